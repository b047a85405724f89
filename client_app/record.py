"""``soulsai-client record``: play Iudex fights with a given policy and write them in tests/data's format.

The arena and the tests need real game data (tests/data/iudex_recorded_episodes.json is 699 steps
from 2023). A volunteer with the game records fights with this command and sends the file: one JSON
object of parallel lists, one entry per step, exactly the keys of that file (tests/data/README.md):

- ``observations``: the env's observation dict *after* the step (JSON numbers and lists);
- ``actions``: the action that led to it (0-19); ``rewards``: the reward that step returned;
- ``dones``: whether the episode ended with this step; ``infos``: ``{"allowed_actions": [...]}``,
  what the env said with that observation; ``episodes``, ``steps``: episode and step indices.

Each episode starts with the reset's observation as step 0, with action 0 and reward 0 standing for
no step: so an episode of n steps has n + 1 entries, and its last observation is the one after the
final step (the kill or the death). This is how the 2023 file holds its steps (its rewards are those
of the step into each observation; its first action of an episode is that placeholder 0).

Nothing is sent anywhere: the file is written (again after every episode, so an interrupted
recording keeps its finished fights) and the volunteer decides what to do with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from client_app import iudex
from client_app.masks import action_mask

POLICIES = ("random", "allowed", "scripted", "noop")
KEYS = ("observations", "actions", "rewards", "dones", "infos", "episodes", "steps")

DESCRIPTION = """\
Play Iudex Gundyr fights with a policy and write every step to a JSON file in the format of the
project's test data (tests/data/README.md), so that recordings from the real game can be shared.

For Dark Souls III (SoulsGymIudex-v0) set the game up first (docs/client.md, "Dark Souls III set-up")
and run `soulsai-client doctor`: recording plays the game exactly as a campaign does, and closing the
env at the end kills the SoulsAI character, as always. Without the game, record the arena
(--env soulsai/IudexArena-v0).
"""

EPILOG = """\
policies:
  random     uniform over the 20 actions (the game drops those it does not allow)
  allowed    uniform over the actions the env allows at each step
  scripted   the hand-written player of client_app/arena/scripted.py
  noop       always 19 (do nothing): where Iudex's hits land and miss on a player standing still
  FILE       a model file (.safetensors) downloaded from a campaign, played greedily

exit codes:
  0  the fights were recorded
  2  bad options, or the env cannot be made or failed (the message says why; finished fights are kept)
"""


def _plain(value: Any) -> Any:
    """NumPy values as JSON numbers and lists (the recording's observations are plain JSON).

    The 2023 recording holds one-element arrays as numbers, and lock_on as true/false."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        # HP, SP and durations are Box(1,) in the env and plain numbers in the recording (as in 2023's).
        return value.reshape(()).item() if value.shape == (1,) else value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def make_policy(name: str, seed: int | None) -> Callable[[dict, np.ndarray | None], int]:
    """A function (raw observation dict, mask) -> action, for a policy name or a model file."""
    rng = np.random.default_rng(seed)
    if name == "random":
        return lambda obs, mask: int(rng.integers(iudex.N_ACTIONS))
    if name == "allowed":
        return lambda obs, mask: int(rng.choice(np.flatnonzero(mask))) if mask is not None else iudex.NOOP
    if name == "noop":
        return lambda obs, mask: iudex.NOOP
    if name == "scripted":
        from client_app.arena.scripted import scripted_action

        return lambda obs, mask: int(scripted_action(obs))
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"--policy {name!r} is not one of {', '.join(POLICIES)} nor a model file")
    from client_app.policy import Policy

    try:
        policy = Policy.from_bytes(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the model {path}: {exc}") from None
    if policy.spec.obs_dim != iudex.ENCODED_DIM or policy.spec.n_actions != iudex.N_ACTIONS:
        raise ValueError(
            f"the model {path} takes {policy.spec.obs_dim} inputs and {policy.spec.n_actions} actions; "
            f"an Iudex model takes {iudex.ENCODED_DIM} and {iudex.N_ACTIONS}"
        )
    return lambda obs, mask: policy.greedy(iudex.encode(obs), mask)


class Recording:
    """The parallel lists, written atomically (a temporary file, then a rename)."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, list] = {key: [] for key in KEYS}

    def add(
        self, obs: dict, action: int, reward: float, done: bool, info: dict, episode: int, step: int
    ) -> None:
        allowed = info.get("allowed_actions")
        if allowed is None and info.get("action_mask") is not None:
            allowed = np.flatnonzero(np.asarray(info["action_mask"], dtype=bool)).tolist()
        plain = _plain(obs)
        if "lock_on" in plain:
            plain["lock_on"] = bool(plain["lock_on"])
        self.data["observations"].append(plain)
        self.data["actions"].append(int(action))
        self.data["rewards"].append(float(reward))
        self.data["dones"].append(bool(done))
        self.data["infos"].append({"allowed_actions": [int(a) for a in (allowed or [])]})
        self.data["episodes"].append(int(episode))
        self.data["steps"].append(int(step))

    def __len__(self) -> int:
        return len(self.data["actions"])

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.path)


def raw_env(env: Any) -> Any:
    """The env under the Iudex encoder: the recording keeps the game's own observation dicts."""
    return env.env if isinstance(env, iudex.IudexEncoder) else env


def record(
    env: Any,
    policy: Callable[[dict, np.ndarray | None], int],
    out: Path,
    *,
    episodes: int = 1,
    max_steps: int | None = None,
    seed: int | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Recording:
    """Play ``episodes`` fights (each cut at ``max_steps`` if given) and write them to ``out``."""
    recording = Recording(out)
    game = raw_env(env)
    for episode in range(episodes):
        obs, info = game.reset(seed=None if seed is None else seed + episode)
        step, total, started = 0, 0.0, time.monotonic()
        recording.add(obs, 0, 0.0, False, info, episode, step)  # the reset: no step led to it
        while True:
            mask = action_mask(info, iudex.N_ACTIONS)
            action = policy(obs, mask)
            obs, reward, terminated, truncated, info = game.step(action)
            step_cut = max_steps is not None and step + 1 >= max_steps
            done = bool(terminated or truncated or step_cut)
            step += 1
            recording.add(obs, action, reward, done, info, episode, step)
            total += float(reward)
            if step % 100 == 0 and not done:
                say(f"episode {episode + 1}/{episodes}: {step} steps, return {total:.2f}")
            if done:
                break
        result = iudex.outcome(obs)
        recording.write()
        say(
            f"episode {episode + 1}/{episodes}: {step} steps in {time.monotonic() - started:.0f} s, "
            f"return {total:.2f}, {'won' if result['win'] else 'lost' if result['player_hp'] == 0 else 'cut'} "
            f"(boss HP {result['boss_hp']:.0%}, player HP {result['player_hp']:.0%}); {len(recording)} steps in {out}"
        )
    return recording


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulsai-client record",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="SoulsGymIudex-v0", choices=iudex.IUDEX_ENV_IDS,
                        help="the fight to record (default: SoulsGymIudex-v0, the game)")  # fmt: skip
    parser.add_argument("--env-kwargs", metavar="JSON", default="{}",
                        help='the env\'s settings as JSON, e.g. \'{"game_speed": 1}\'')  # fmt: skip
    parser.add_argument("--policy", default="allowed", metavar="NAME|FILE",
                        help="random, allowed (default), scripted, noop, or a model file (.safetensors)")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=1, metavar="N", help="fights to record (default 1)")
    parser.add_argument("--max-steps", type=int, metavar="N", help="cut each fight after N steps")
    parser.add_argument("--seed", type=int, help="seeds the policy (and the arena)")
    parser.add_argument("--output", "-o", required=True, metavar="FILE", help="the JSON file to write")
    parser.add_argument("--quiet", "-q", action="store_true", help="print errors only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``soulsai-client record``; 0 when the fights were recorded, 2 otherwise (a readable line)."""
    from client_app.envs import make_env

    ns = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))

    def say(line: str) -> None:
        if not ns.quiet:
            print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr, flush=True)
        return 2

    if ns.episodes < 1 or (ns.max_steps is not None and ns.max_steps < 1):
        return fail("--episodes and --max-steps must be at least 1")
    try:
        kwargs = json.loads(ns.env_kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return fail(f"--env-kwargs is not a JSON object: {exc}")
    try:
        policy = make_policy(ns.policy, ns.seed)
    except ValueError as exc:
        return fail(str(exc))
    out = Path(ns.output)
    try:
        env = make_env(ns.env, kwargs)
    except RuntimeError as exc:
        return fail(str(exc))
    say(f"recording {ns.episodes} fight(s) of {ns.env} with the {ns.policy} policy into {out}")
    recording: Recording | None = None
    try:
        recording = record(
            env, policy, out, episodes=ns.episodes, max_steps=ns.max_steps, seed=ns.seed, say=say
        )
    except KeyboardInterrupt:
        say("interrupted: the finished fights are in the file")
        return 0
    except Exception as exc:  # the game crashed or SoulsGym lost track of it: said, not a traceback
        return fail(f"the env failed ({type(exc).__name__}: {exc}); the finished fights are in {out}")
    finally:
        try:
            env.close()
        except Exception as exc:
            print(
                f"error: the game could not be closed cleanly ({type(exc).__name__}: {exc})", file=sys.stderr
            )
    say(f"done: {len(recording)} steps of {ns.episodes} fight(s) in {out}")
    return 0
