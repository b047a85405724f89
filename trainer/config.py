"""Hyperparameters of the learner, per campaign, with defaults per environment (docs/trainer.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from client_app.iudex import IUDEX_ENV_IDS

DQN_WAITING_SAMPLES = 256  # the backlog a DQN learner names as its stream mark (DQNConfig.stream_high_water)


def chunks_for(steps: int, chunk_steps: int) -> int:
    """How many chunks of ``chunk_steps`` hold ``steps`` steps (rounded up)."""
    return -(-steps // max(1, chunk_steps))


class _Config:
    """Shared by the algorithms' configs: building from a campaign's JSON overrides, with clear errors."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build a config from a campaign's overrides, refusing unknown keys and bad values."""
        if not isinstance(values, dict):
            raise ValueError(f"hyperparameters must be a JSON object, got {type(values).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            default = known[name].default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false, got {value!r}")
            elif isinstance(default, str):
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name} must be a whole number, got {value!r}")
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{name} must be a number, got {value!r}")
                value = float(value)
            elif isinstance(default, tuple):
                if not isinstance(value, (list, tuple)) or not value or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value
                ):
                    raise ValueError(f"{name} must be a list of layer widths from 1 to 4096, got {value!r}")
                value = tuple(value)
            kwargs[name] = value
        config = cls(**kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (0 < self.gamma <= 1, "gamma must be in (0, 1]"),
            (0 < self.lr < 1, "lr must be in (0, 1)"),
            (self.max_grad_norm > 0, "max_grad_norm must be positive"),
            (self.publish_min_seconds >= 0, "publish_min_seconds must not be negative"),
            (self.checkpoint_every_versions >= 1, "checkpoint_every_versions must be at least 1"),
            (self.eval_every_samples >= 0, "eval_every_samples must not be negative (0: no evaluation)"),
            (1 <= self.eval_episodes <= 1000, "eval_episodes must be 1 to 1000"),
            (0 < self.eval_max_share <= 1, "eval_max_share must be in (0, 1]"),
            (self.obs_norm_clip > 0, "obs_norm_clip must be positive"),
        ]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data


DISTRIBUTIONAL = ("none", "qr")
GUIDES = ("none", "scripted")


@dataclass(frozen=True)
class DQNConfig(_Config):
    """DQN with double Q-learning, a dueling head, a target network, n-step returns and prioritized replay."""

    gamma: float = 0.99  # discount factor
    n_step: int = 3  # steps of real rewards before bootstrapping (fewer at a chunk's end)
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 64  # transitions per gradient step
    buffer_size: int = 100_000  # replay buffer capacity, in transitions
    learning_starts: int = 1_000  # transitions in the buffer before the first update
    samples_per_update: float = 2.0  # the learner ingests at most this many new samples per update
    target_update_every: int = 128  # updates between hard copies to the target network
    hidden: tuple[int, ...] = field(default=(256, 256))  # widths of the MLP's hidden layers
    dueling: bool = True  # value + advantage head
    double_q: bool = True  # choose next actions with the online net, value them with the target net
    prioritized: bool = True  # sample transitions by TD error (Schaul et al. 2016), else uniformly
    per_alpha: float = 0.6  # priority exponent: p = (|td| + per_eps)^per_alpha; 0 is uniform
    per_beta0: float = 0.4  # importance-sampling exponent at the first update...
    per_beta_anneal_updates: int = 50_000  # ...rising linearly to 1 over this many updates
    per_eps: float = 1e-6  # added to |td| so that no transition's priority is zero
    max_grad_norm: float = 10.0  # gradient clipping
    eps_start: float = 1.0  # exploration rate of the first model
    eps_end: float = 0.04  # exploration rate after the decay
    eps_decay_samples: int = 10_000  # samples over which epsilon falls linearly
    publish_every_updates: int = 50  # a new model version at most every this many updates...
    publish_min_seconds: float = 1.0  # ...and at most once per this many seconds
    checkpoint_every_versions: int = 20  # keep every n-th model version as a checkpoint
    checkpoint_replay: bool = False  # checkpoints also keep the replay buffer (large: obs_dim * 8 bytes per transition)
    normalize_obs: bool = False  # running mean/std normalisation of observations (published with the model)
    obs_norm_clip: float = 10.0  # normalised observations are clipped to +-this
    eval_every_samples: int = 10_000  # a checkpoint with greedy evaluation episodes this often (0: never)
    eval_episodes: int = 10  # evaluation episodes per evaluated checkpoint, played by clients
    eval_max_share: float = 0.1  # evaluations wait while they would exceed this share of client steps
    # Opt-in: while clients outpace the learner (chunks piling up unread), an update may sample up to
    # this many times batch_size and count as that many updates of the replay ratio: the same
    # transitions replayed per sample, in fewer, larger steps, instead of slowing clients down (1: off).
    large_batch_max: int = 1
    # "qr": QR-DQN (Dabney et al. 2017), n_quantiles quantiles per action, the quantile Huber loss;
    # "none": one expected value per action and the Huber TD loss.
    distributional: str = "none"
    n_quantiles: int = 16  # quantiles per action with distributional "qr" (the head costs n_actions * N outputs)
    noisy: bool = False  # NoisyNet layers (Fortunato et al. 2017); explore by noise: eps_start = eps_end = 0 suits
    # "scripted": clients play guide_share of their training episodes with the scripted Iudex player
    # (client_app.arena.scripted_action, guide_epsilon of its actions at random), and the learner adds
    # DQfD's large-margin loss (Hester et al. 2018) on the steps where the action was the guide's;
    # "none": no guide. Iudex fights only.
    guide: str = "none"
    guide_share: float = 0.5  # share of training episodes the guide plays...
    guide_decay_samples: int = 0  # ...falling linearly to 0 over this many samples (0: constant)
    guide_epsilon: float = 0.05  # random actions in a guided episode (at most the agent's epsilon)
    demo_margin: float = 0.1  # the guide's action must beat every other Q-value by this much...
    demo_weight: float = 1.0  # ...with this weight of the margin loss next to the TD loss

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.guide in GUIDES, f"guide must be one of {', '.join(GUIDES)}"),
            (0 <= self.guide_share <= 1, "guide_share must be in [0, 1]"),
            (self.guide_decay_samples >= 0, "guide_decay_samples must not be negative"),
            (0 <= self.guide_epsilon <= 1, "guide_epsilon must be in [0, 1]"),
            (0 <= self.demo_margin <= 100, "demo_margin must be 0 to 100"),
            (0 <= self.demo_weight <= 100, "demo_weight must be 0 to 100"),
            (self.distributional in DISTRIBUTIONAL, f"distributional must be one of {', '.join(DISTRIBUTIONAL)}"),
            (2 <= self.n_quantiles <= 256, "n_quantiles must be 2 to 256"),
            (1 <= self.large_batch_max <= 64, "large_batch_max must be 1 to 64"),
            (1 <= self.n_step <= 20, "n_step must be 1 to 20"),
            (1 <= self.batch_size <= 65_536, "batch_size must be 1 to 65536"),
            (self.batch_size <= self.buffer_size, "buffer_size must be at least batch_size"),
            (self.learning_starts >= self.batch_size, "learning_starts must be at least batch_size"),
            (self.samples_per_update > 0, "samples_per_update must be positive"),
            (self.target_update_every >= 1, "target_update_every must be at least 1"),
            (0 <= self.eps_end <= self.eps_start <= 1, "need 0 <= eps_end <= eps_start <= 1"),
            (self.eps_decay_samples >= 0, "eps_decay_samples must not be negative"),
            (self.publish_every_updates >= 1, "publish_every_updates must be at least 1"),
            (0 <= self.per_alpha <= 1, "per_alpha must be in [0, 1]"),
            (0 <= self.per_beta0 <= 1, "per_beta0 must be in [0, 1]"),
            (self.per_beta_anneal_updates >= 0, "per_beta_anneal_updates must not be negative"),
            (self.per_eps > 0, "per_eps must be positive"),
        ]

    def stream_high_water(self, chunk_steps: int) -> int:
        """Chunks waiting in the stream past which clients should slow down (0: the server's default).

        The learner names it in its stats hash."""
        # Every sample waiting unread is one the clients' policy has not learnt from yet: on
        # LunarLander in one process (bench/arena_dqn.py, seeds 0 and 1), a 64-chunk backlog (the
        # server's mark) delayed a greedy 200 from 30k and 60k env steps to 80k and past 90k. About
        # 256 samples may wait (2 chunks of 128, never fewer than 2): enough to keep the learner fed
        # between reads. Through the stack (2 unpaced LunarLander clients, versions every 0.25 s) the
        # samples trained on were then 3.8-3.9 versions (about 350 samples) behind; with 1,024
        # samples and a version a second, 6 versions (about 1,500 samples).
        # Large-batch mode lets chunks pile up instead (past LARGE_BATCH_BACKLOG), on the server's mark.
        if self.large_batch_max > 1:
            return 0
        return max(2, chunks_for(DQN_WAITING_SAMPLES, chunk_steps))

    @property
    def quantiles(self) -> int:
        """The network's quantiles per action: n_quantiles for QR-DQN, 1 for an expected-value head."""
        return self.n_quantiles if self.distributional == "qr" else 1

    def guide_share_at(self, samples: int) -> float:
        """The share of training episodes the guide plays after ``samples`` samples (0 without one)."""
        if self.guide == "none":
            return 0.0
        if self.guide_decay_samples == 0:
            return self.guide_share
        return self.guide_share * max(0.0, 1.0 - samples / self.guide_decay_samples)

    def epsilon(self, samples: int) -> float:
        """Linear decay from eps_start to eps_end over eps_decay_samples ingested samples."""
        if self.eps_decay_samples == 0:
            return self.eps_end
        frac = min(1.0, samples / self.eps_decay_samples)
        return self.eps_start + frac * (self.eps_end - self.eps_start)


OFF_POLICY = ("none", "vtrace")


@dataclass(frozen=True)
class PPOConfig(_Config):
    """PPO (Schulman et al. 2017) on whichever clients' sequences arrive, with a staleness bound.

    Clients sample actions from the published policy and send each action's log-probability; the
    learner gathers ``rollout_steps`` steps from any clients, computes GAE with its own critic, and
    runs ``epochs`` passes of clipped-surrogate minibatch updates before publishing the next version.
    A chunk played by a model more than ``max_staleness`` versions old is dropped, not trained on;
    with ``off_policy`` "vtrace" the advantages correct for the version played (V-trace) and the
    bound is ``vtrace_max_staleness``.
    """

    gamma: float = 0.99
    gae_lambda: float = 0.95  # GAE's bias-variance trade-off (Schulman et al. 2016)
    lr: float = 3e-4  # Adam learning rate...
    lr_decay_samples: int = 0  # ...falling linearly to 0 over this many samples (0: constant)
    rollout_steps: int = 2048  # steps gathered (from any clients) per policy update
    epochs: int = 10  # passes over each rollout
    minibatch_size: int = 64
    clip_range: float = 0.2  # the surrogate's ratio clip
    ent_coef: float = 0.0  # entropy bonus
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True  # per minibatch
    max_staleness: int = 1  # drop chunks played by a model more than this many versions old
    # "vtrace": off-policy correction of the versions clients played (IMPALA's V-trace, as APPO):
    # V-trace advantages and critic targets (with gae_lambda as its lambda), chunks kept up to
    # vtrace_max_staleness versions old; "none": plain PPO with the max_staleness bound.
    off_policy: str = "none"
    vtrace_rho_clip: float = 1.0  # rho-bar: truncates pi / mu in the targets and the advantages
    vtrace_c_clip: float = 1.0  # c-bar: truncates the traces (how far a correction reaches back)
    vtrace_max_staleness: int = 8  # with "vtrace", drop chunks only past this many versions old
    hidden: tuple[int, ...] = field(default=(64, 64))  # actor and critic MLP widths (tanh)
    publish_min_seconds: float = 0.0  # every update is published (the policy must stay fresh)
    checkpoint_every_versions: int = 20
    normalize_obs: bool = True
    obs_norm_clip: float = 10.0
    eval_every_samples: int = 20_000
    eval_episodes: int = 10
    eval_max_share: float = 0.1  # evaluations wait while they would exceed this share of client steps

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (0 <= self.gae_lambda <= 1, "gae_lambda must be in [0, 1]"),
            (self.lr_decay_samples >= 0, "lr_decay_samples must not be negative"),
            (16 <= self.rollout_steps <= 1_000_000, "rollout_steps must be 16 to 1000000"),
            (1 <= self.epochs <= 100, "epochs must be 1 to 100"),
            (2 <= self.minibatch_size <= self.rollout_steps, "minibatch_size must be 2 to rollout_steps"),
            (0 < self.clip_range < 1, "clip_range must be in (0, 1)"),
            (self.ent_coef >= 0, "ent_coef must not be negative"),
            (self.vf_coef > 0, "vf_coef must be positive"),
            (0 <= self.max_staleness <= 100, "max_staleness must be 0 to 100"),
            (self.off_policy in OFF_POLICY, f"off_policy must be one of {', '.join(OFF_POLICY)}"),
            (0 < self.vtrace_rho_clip <= 100, "vtrace_rho_clip must be in (0, 100]"),
            (0 < self.vtrace_c_clip <= self.vtrace_rho_clip, "vtrace_c_clip must be in (0, vtrace_rho_clip]"),
            (0 <= self.vtrace_max_staleness <= 100, "vtrace_max_staleness must be 0 to 100"),
        ]

    @property
    def staleness_bound(self) -> int:
        """Versions behind the current model a chunk may have been played at and still train."""
        return self.vtrace_max_staleness if self.off_policy == "vtrace" else self.max_staleness

    def stream_high_water(self, chunk_steps: int) -> int:
        """Chunks waiting in the stream past which clients should slow down (see DQNConfig's)."""
        # About one rollout may wait while an iteration trains: more would be played by a policy
        # older than the staleness bound and dropped, wasting volunteers' game time.
        return max(2, chunks_for(self.rollout_steps, chunk_steps))

    def lr_at(self, samples: int) -> float:
        if self.lr_decay_samples == 0:
            return self.lr
        return self.lr * max(0.0, 1.0 - samples / self.lr_decay_samples)


AlgorithmConfig = DQNConfig | PPOConfig


# Tuned per environment, after Stable-Baselines3 zoo's DQN settings, for a learner fed by clients.
DEFAULTS_BY_ENV: dict[str, dict[str, Any]] = {
    # Env steps until the mean return of the last 100 episodes first reached 200 / 475, seeds 0 and 1,
    # in-process runs of the platform (one client, weights published every 50 updates; Nov 2026):
    #   n_step 1, uniform, eps_end 0.04 (before):   70k / >100k,    67k / >100k
    #   n_step 3, prioritized, eps_end 0.04:        23k / 76k,      22k / >100k
    #   n_step 3, prioritized, eps_end 0.01:        24k / >60k,     22k / >60k
    #   n_step 5, prioritized, eps_end 0.01 (kept): 22k / 63k,      23k / 68k
    #   the same with target_update_every 500:      22k / 59k,      22k / 68k (within noise: kept 250)
    # lr and target sync: 1e-3 and 250 beat SB3 zoo's 2.3e-3 and 128 (200 not reached by 120k).
    "CartPole-v1": {
        "lr": 1e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "samples_per_update": 2.0,
        "target_update_every": 250,
        "n_step": 5,
        "prioritized": True,
        "eps_end": 0.01,
        "eps_decay_samples": 8_000,
        "eval_every_samples": 5_000,
    },
    # SB3 zoo's settings, with n-step returns and prioritized replay at the general defaults (on
    # CartPole's evidence above and Rainbow's, Hessel et al. 2018, n = 3); measured runs below and in
    # docs/trainer.md, "DQN on LunarLander-v2 through the stack".
    "LunarLander-v2": {
        "lr": 6.3e-4,
        "batch_size": 128,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "samples_per_update": 1.0,
        "target_update_every": 250,
        "n_step": 3,
        "prioritized": True,
        "eps_end": 0.1,
        "eps_decay_samples": 12_000,
        # Clients play LunarLander unpaced, some 300 samples a second for the learner: a version a
        # second left the samples it trained on about 6 versions (1,500 samples) behind the learner
        # through the stack, a version every 0.25 s (and a 256-sample stream mark) 3.8 (350).
        "publish_min_seconds": 0.25,
        # QR-DQN (16 quantiles): in one process (bench/arena_dqn.py, seeds 0-2, 30 greedy episodes
        # every 10k) the greedy mean first reached 200 at 50k/50k/60k and held 227-276 at 100k,
        # against 30k/60k/80k and 197-210 with expected values; through the stack (2 clients,
        # bench/learning.py --confirm-episodes 100, Dec 2) 3 of 3 runs reached a confirmed 200, at
        # 68.5k, 90.3k and 90.4k, against 3 of 6 runs with expected values (78.7k, 84.6k, 90.1k).
        "distributional": "qr",
    },
}

# The Iudex fights (the arena and the game share the encoder, the reward and the action masks). Greedy
# win rates of 20 evaluation fights every 25k env steps, 4 arenas in one process (bench/arena_dqn.py,
# Nov 2026):
#   the arena's default boss_damage 0.4, these settings: 20, 60, 50, 35, 85, 65% up to 150k
#     (an earlier run: 40, 15, 60, 85, 95%);
#   Iudex at full strength (boss_damage 1.0), these settings: 0% at every evaluation up to 150k, boss
#     HP left 80-95%; also 0% with epsilon over 100k (to 175k), and the general defaults through the
#     stack (to 95k);
#   boss_damage 0.35, epsilon over 100k: 0% at 100k, 55% at 125k, 90% at 150k.
# Observations are normalised: HP, positions and animation times span very different ranges.
_IUDEX_DQN = {
    "lr": 5e-4,
    "batch_size": 64,
    "buffer_size": 200_000,
    "learning_starts": 1_000,
    "samples_per_update": 2.0,
    "target_update_every": 1_000,
    "n_step": 5,
    "prioritized": True,
    "eps_end": 0.05,
    "eps_decay_samples": 50_000,
    "normalize_obs": True,
    "eval_every_samples": 25_000,
    "eval_episodes": 20,
    # The scripted player plays half the training episodes, and the margin loss teaches its choices
    # where it played (docs/trainer.md, "A guide for the Iudex fight"). At full strength, one process,
    # seed 0 (bench/arena_dqn.py): without a guide 0% at every evaluation to 300k; half the episodes
    # guided but no margin, still 0% to 300k (boss HP left 89-98%); with the margin 10, 15, 45, 40,
    # 55% at 25k-125k and 75-80% at 175k-250k. Through the stack (4 clients, bench/learning.py, Dec 2,
    # three runs): 70%, 50% and 50% of 20 fights at 75k, 75k and 100k; 55%, 56% and 66% of 200
    # fresh-seed fights.
    "guide": "scripted",
}
DEFAULTS_BY_ENV.update({env_id: _IUDEX_DQN for env_id in IUDEX_ENV_IDS})


# After Stable-Baselines3 zoo's PPO settings (rollout = n_envs * n_steps of theirs).
PPO_DEFAULTS_BY_ENV: dict[str, dict[str, Any]] = {
    "CartPole-v1": {
        "rollout_steps": 256,
        "minibatch_size": 256,
        "epochs": 20,
        "gamma": 0.98,
        "gae_lambda": 0.8,
        "lr": 1e-3,
        "lr_decay_samples": 100_000,
        "normalize_obs": False,
        "eval_every_samples": 5_000,
    },
    "LunarLander-v2": {
        "rollout_steps": 16_384,
        "minibatch_size": 64,
        "epochs": 4,
        "gamma": 0.999,
        "gae_lambda": 0.98,
        "ent_coef": 0.01,
        "lr": 3e-4,
        "normalize_obs": False,
        "eval_every_samples": 50_000,
    },
}

# The Iudex fights: PPO's general defaults learn the arena quickly (bench/learning.py, 2 clients, Nov
# 2026: greedy win rate 10, 20, 35, 80, 55, 95% of 20 fights at 21k-121k env steps, 38 s); a boss
# fight's win rate wants more evaluation fights than a return does, as for DQN.
PPO_DEFAULTS_BY_ENV.update({env_id: {"eval_episodes": 20} for env_id in IUDEX_ENV_IDS})

CONFIGS: dict[str, type[_Config]] = {"dqn": DQNConfig, "ppo": PPOConfig}
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {"dqn": DEFAULTS_BY_ENV, "ppo": PPO_DEFAULTS_BY_ENV}


def config_for(env_id: str, overrides: dict[str, Any] | None = None, *, algorithm: str = "dqn") -> AlgorithmConfig:
    """The campaign's config: the algorithm's defaults for the environment, then the campaign's overrides."""
    if algorithm not in CONFIGS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(sorted(CONFIGS))}")
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"hyperparameters must be a JSON object, got {type(overrides).__name__}")
    values = dict(DEFAULTS[algorithm].get(env_id, {}))
    values.update(overrides or {})
    config = CONFIGS[algorithm].from_dict(values)
    if getattr(config, "guide", "none") != "none" and env_id not in IUDEX_ENV_IDS:
        raise ValueError(f"guide {config.guide!r} plays Iudex fights only, not {env_id}")
    return config
