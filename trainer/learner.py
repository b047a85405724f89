"""The learner's loop: one campaign's learner, from taking its lease to exit.

One learner per campaign (``trainer.lease``), fed by the campaign's Redis Stream (``trainer.stream``),
publishing through the store it is given (``trainer.campaign.LearnerStore``), checkpointing in
``trainer.checkpoint``'s format and asking for evaluations when ``trainer.evaluation`` says so. The
maths lives in ``trainer.dqn`` and ``trainer.ppo`` behind ``trainer.agents``; this module only moves
data and decides when. It imports no Django: the portal wires it up (``portal.training``). See
docs/trainer.md for the data flow.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import pickle
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis
import torch

from client_app.policy import non_finite, save_model, unusable_params
from client_app.protocol import decode_stored_chunk
from client_app.spaces import action_count, flat_dim
from trainer import metrics
from trainer.agents import DQNAgent, PPOAgent, agent_for
from trainer.campaign import CampaignSpec, LearnerStore
from trainer.checkpoint import state_dump, state_load, weights_load
from trainer.config import config_for
from trainer.evaluation import EvaluationSchedule
from trainer.keys import CampaignKeys
from trainer.lease import Lease, LeaseLost
from trainer.machine_stats import MachineStats
from trainer.shutdown import SHUTDOWN
from trainer.stream import START, Entry, ExperienceStream, StreamPosition

log = logging.getLogger(__name__)

# Starting up (the agent built, a checkpoint read) may hold the lease, renewed from a thread, for at
# most this many lease lengths; a learner stuck there longer gives the campaign up to a successor.
STARTUP_LEASES = 10

Outcome = Literal[
    "lease_held", "device_unavailable", "paused", "stopped", "lease_lost", "time_limit", "shutdown"
]

# SHUTDOWN (trainer.shutdown) is set when the worker shuts down: every learner in the process
# checkpoints, releases its lease and returns, so a successor starts at once.

UPDATE_SLICE_SECONDS = 0.1  # longest run of gradient updates between two looks at the clock
HOUSEKEEPING_SECONDS = 1.0  # status check and stats hash
DRAIN_MIN_BUSY_S = 0.5  # seconds of work the drain rate is measured over (shorter windows are noise)
# Fields of the stats hash ({c<id>}:learner) that a learner which could not start leaves for staff.
LEARNER_ERROR_FIELDS = ("error", "error_at")
LOG_SECONDS = 10.0
LAG_CAP = 20  # policy_lag_samples counts chunks this many or more versions behind together
#: chunk_age_samples: seconds from a chunk's cut (its ``made``, the client's clock) to its ingestion,
#: counted in these buckets (under 1 s, 1-2 s, ..., and 60 s or more): where a lag of versions comes
#: from; stream_age_samples: the part of it spent in the stream (from the relay's XADD, the entry id's
#: milliseconds, to the ingestion), the rest being the client's spool and the way to the relay.
AGE_BUCKETS_S = (1, 2, 5, 10, 20, 60)


@dataclass(frozen=True)
class LearnerSettings:
    """How a learner runs on its machine, as the process that starts it configures it."""

    lease_seconds: float = 20.0  # SOULSAI_LEASE_SECONDS: renewed every third of it
    device: str = "auto"  # SOULSAI_DEVICE: auto | cpu | cuda ("cpu" keeps a GPU machine's learner off it)
    torch_threads: int = 1  # SOULSAI_TORCH_THREADS: PyTorch's threads when on the CPU
    # SOULSAI_LEARNER_HOLD_CHUNKS: stream entries held (read, in no checkpoint yet) past which a
    # checkpoint is written at once, so that they are acknowledged and deleted. Bounds what a learner
    # keeps in Redis (far below SOULSAI_STREAM_MAXLEN) and what a successor ingests again.
    hold_chunks: int = 2000


DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(RuntimeError):  # noqa: N818  (reads as the condition, like LeaseLost)
    """The device the host was told to train on is not there (``SOULSAI_DEVICE=cuda`` without CUDA)."""


def learner_device(settings: LearnerSettings) -> torch.device:
    """CUDA when there is one (unless the device is "cpu"); on the CPU, a bounded number of threads.

    ``cuda`` on a host without a usable CUDA device raises ``DeviceUnavailable``: a host set up as a
    GPU learner must not train on its CPU, hundreds of times slower, without anyone noticing.
    """
    if settings.device not in DEVICES:
        raise DeviceUnavailable(f"SOULSAI_DEVICE={settings.device!r} is not one of {', '.join(DEVICES)}")
    if settings.device != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    if settings.device == "cuda":
        raise DeviceUnavailable(
            "SOULSAI_DEVICE=cuda but this host has no CUDA device (torch.cuda.is_available() is False): "
            f"{_cuda_missing_reason()}. Install a CUDA build of PyTorch and the NVIDIA driver, or set "
            "SOULSAI_DEVICE=auto (or cpu) to train on the CPU"
        )
    # A learner shares its machine with the worker's other processes: one thread unless told otherwise.
    torch.set_num_threads(settings.torch_threads)
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """What the stats hash and the log say: ``cpu``, or ``cuda`` with the GPU's name."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device)


def _cuda_missing_reason() -> str:
    """Why PyTorch sees no GPU, as far as it can tell."""
    if torch.version.cuda is None:
        return f"PyTorch {torch.__version__} is built without CUDA"
    if not os.path.exists("/dev/nvidiactl") and os.name == "posix":
        return f"PyTorch is built for CUDA {torch.version.cuda}, but no NVIDIA driver is loaded (no /dev/nvidiactl)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return f"PyTorch is built for CUDA {torch.version.cuda}; CUDA_VISIBLE_DEVICES={visible!r} hides the GPUs"
    return f"PyTorch is built for CUDA {torch.version.cuda}, but the driver offers no usable device"


def age_bucket_name(bucket: int) -> str:
    """The label of ``AGE_BUCKETS_S`` bucket ``bucket``: "<1", "1-2", ..., ">=60"."""
    if bucket == 0:
        return f"<{AGE_BUCKETS_S[0]}"
    if bucket >= len(AGE_BUCKETS_S):
        return f">={AGE_BUCKETS_S[-1]}"
    return f"{AGE_BUCKETS_S[bucket - 1]}-{AGE_BUCKETS_S[bucket]}"


def _count_age(counts: dict[int, int], seconds: float, samples: int) -> None:
    """Add ``samples`` to the ``AGE_BUCKETS_S`` bucket of an age of ``seconds``."""
    bucket = bisect.bisect_right(AGE_BUCKETS_S, seconds)
    counts[bucket] = counts.get(bucket, 0) + samples


def _age_json(counts: dict[int, int]) -> str:
    """An age histogram for the stats hash: JSON {"<1": samples, "1-2": ..., ">=60": ...}."""
    return json.dumps({age_bucket_name(k): n for k, n in sorted(counts.items())})


def _machine_id(fields: dict[bytes, bytes]) -> int:
    """The token id of the machine that sent a stream entry (the relay's field "m"); 0 if unknown."""
    try:
        return int(fields.get(b"m", b"0"))
    except ValueError:
        return 0


class LearnerRun:
    """One run of a campaign's learner, from resume to exit (lease already held)."""

    def __init__(
        self,
        campaign: CampaignSpec,
        *,
        store: LearnerStore,
        lease: Lease,
        client: redis.Redis,
        settings: LearnerSettings,
    ):
        self.campaign_id = campaign.campaign_id
        self.store = store
        self.lease = lease
        self.client = client
        self.keys = CampaignKeys(campaign.campaign_id)
        self.algorithm = campaign.algorithm
        self.config = config_for(campaign.env_id, campaign.hyperparams, algorithm=campaign.algorithm)
        # The stream mark it names with its stats. Named before the agent was built, it held clients
        # from the first second and slowed the flagging of a poisoning client from about 25 of its
        # episodes to 44-55 (tests/e2e/test_poisoned_client.py): the start-up backlog is the lesser cost.
        self.high_water = self.config.stream_high_water(campaign.chunk_steps)
        self.device = learner_device(settings)
        self.device_name = device_name(self.device)
        self.agent = agent_for(
            campaign.algorithm,
            self.config,
            obs_dim=flat_dim(campaign.observation_space),
            n_actions=action_count(campaign.action_space),
            action_start=int(campaign.action_space.get("start", 0)),
            device=self.device,
        )
        self.spec = self.agent.spec
        self.chunk_steps = campaign.chunk_steps
        consumer = f"{socket.gethostname()}:{os.getpid()}:{lease.token[:8]}"
        self.stream = ExperienceStream(client, self.keys, consumer)
        # Stream entries up to ``covered`` are in the agent state loaded (a checkpoint's); ``held`` are
        # those ingested since, in order, pending in the group until a checkpoint covers them.
        self.covered = START
        self.held: list[bytes] = []
        self.hold_chunks = settings.hold_chunks
        self.evaluations = EvaluationSchedule(
            client,
            self.keys,
            every_samples=self.config.eval_every_samples,
            episodes=self.config.eval_episodes,
            max_share=self.config.eval_max_share,
        )
        # Version numbers never go back, even past versions published after the last checkpoint.
        self.version = campaign.model_version
        self.updates_at_publish = 0
        self.updates_at_checkpoint = 0
        self.published_at = time.monotonic()
        self._stats_at = (time.monotonic(), 0)
        self.updates_per_s = 0.0
        # What the learner can take when it never waits for chunks: chunks read per second of its own
        # work (reading, training, publishing). The relay holds clients for as long as the learner needs
        # to work through the backlog past its mark (portal.relay.services.backoff_ms).
        self.busy_s = 0.0
        self.chunks_taken = 0
        self._drain_at = (0.0, 0)
        self.drain_rate = 0.0
        self.policy_lag = 0.0  # mean model versions behind, of the chunks ingested last
        # versions behind (LAG_CAP: that many or more) -> [samples kept, samples dropped as stale], this run
        self.lag_samples: dict[int, list[int]] = {}
        self.age_samples: dict[int, int] = {}  # AGE_BUCKETS_S index (len: the last, open one) -> samples
        self.stream_age_samples: dict[int, int] = {}  # the same, from the relay's XADD
        self.recoveries = 0  # times the network diverged (non-finite weights) and was reloaded
        self.voided: set[int] = set()  # machines whose data staff voided, applied to the agent
        self.machine_stats = MachineStats()  # per-machine sums, flushed to Redis at housekeeping

    # -- resume and checkpoints -------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the newest usable checkpoint: its published weights plus the learner state."""
        self._load_newest_checkpoint()
        self.updates_at_publish = self.updates_at_checkpoint = self.agent.updates
        self._stats_at = (time.monotonic(), self.agent.updates)
        self.evaluations.schedule_after(self.agent.samples_total)

    def _load_newest_checkpoint(self) -> int | None:
        """Load the newest checkpoint that loads (its weights all finite); its version, or None."""
        for version in self.store.checkpoint_versions(self.campaign_id):
            try:
                self._load_checkpoint(version)
            except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
                # A lost or damaged file must not crash-loop the learner: fall back to an older one.
                log.warning("campaign %s: cannot resume from v%d: %s", self.campaign_id, version, exc)
                continue
            log.info(
                "campaign %s: resumed from checkpoint v%d (%d updates, %d samples)",
                self.campaign_id,
                version,
                self.agent.updates,
                self.agent.samples_total,
            )
            return version
        return None

    def recover(self, broken: list[str]) -> None:
        """The network diverged: publish nothing, and go back to the last good checkpoint.

        Weights are only ever published finite (clients refuse others), so the newest checkpoint that
        loads is the last good one; with none yet, the agent starts afresh. The entries held since
        that checkpoint are still in the stream: they are claimed and ingested again, so no sample is
        lost; the updates made since are. Version numbers still never go back.
        """
        self.recoveries += 1
        log.error(
            "campaign %s: the network diverged after %d updates (non-finite values in %s): not "
            "publishing; back to the last good checkpoint (recovery %d)",
            self.campaign_id,
            self.agent.updates,
            ", ".join(broken),
            self.recoveries,
        )
        if self._load_newest_checkpoint() is None:
            log.error("campaign %s: no checkpoint to go back to: starting the agent afresh", self.campaign_id)
            self.agent = self._fresh_agent()
            self.covered = START
        self.held = []
        self.ingest(self.stream.claim_pending())
        self.updates_at_publish = self.updates_at_checkpoint = self.agent.updates
        self._stats_at = (time.monotonic(), self.agent.updates)
        self.published_at = time.monotonic()

    def _fresh_agent(self) -> DQNAgent | PPOAgent:
        return agent_for(
            self.algorithm,
            self.config,
            obs_dim=self.agent.obs_dim,
            n_actions=self.agent.n_actions,
            action_start=self.agent.action_start,
            device=self.device,
        )

    def _load_checkpoint(self, version: int) -> None:
        checkpoint = self.store.checkpoint_read(self.campaign_id, version)
        policy = weights_load(checkpoint.weights, spec=self.spec)
        state = state_load(checkpoint.state, algorithm=self.algorithm)
        # Load into a fresh agent first, so a failure half-way leaves this run untouched.
        agent = self._fresh_agent()
        agent.load(policy, state.agent)
        self.agent = agent
        self.covered = state.stream_covered

    def stream_position(self) -> StreamPosition:
        """The newest stream entry the agent has ingested."""
        return StreamPosition.parse(self.held[-1]) if self.held else self.covered

    def learner_state(self) -> bytes:
        return state_dump(
            algorithm=self.algorithm,
            config=self.config,
            agent_state=self.agent.state_dict(),
            stream_covered=self.stream_position(),
        )

    def publish(self, *, checkpoint: bool) -> None:
        """Publish the online network as the next version; a checkpoint also carries the learner state."""
        # Renewing first proves the lease is still ours: a learner that lost it must never publish.
        if not self.lease.renew():
            raise LeaseLost
        params, obs_norm = self.agent.params(), self.agent.obs_norm()
        broken = unusable_params(params)
        if obs_norm is not None:
            broken += non_finite({"obs_norm.mean": obs_norm.mean, "obs_norm.std": obs_norm.std})
        if broken:
            self.recover(broken)  # never published: clients would refuse it (or crash on it)
            return
        version = self.version + 1
        evaluate = self.evaluations.due(self.agent.samples_total)
        checkpoint = checkpoint or evaluate
        weights = save_model(
            self.spec, params, version=version, epsilon=self.agent.exploration(), obs_norm=obs_norm,
            **self.agent.guide(),
        )
        covering = list(self.held) if checkpoint else []  # what the state written now holds
        position = self.stream_position()
        with metrics.publishing(self.campaign_id, checkpoint=checkpoint):
            model = self.store.model_publish(
                self.campaign_id,
                version=version,
                weights=weights,
                state=self.learner_state() if checkpoint else None,
                is_checkpoint=checkpoint,
                samples_total=self.agent.samples_total,
                updates_total=self.agent.updates,
            )
        self.version = version
        self.updates_at_publish = self.agent.updates
        if checkpoint:
            self.updates_at_checkpoint = self.agent.updates
            # The checkpoint is stored: what it covers may leave Redis. Killed before this line, a
            # successor finds these entries pending and skips them (they are at or before ``position``).
            self.stream.done(covering)
            self.held = self.held[len(covering) :]
            self.covered = position
        if evaluate:
            self.evaluations.request(model, samples_total=self.agent.samples_total)
            log.info(
                "campaign %s: asked clients for %d evaluation episodes of v%d",
                self.campaign_id,
                self.evaluations.episodes,
                model["version"],
            )
        self.published_at = time.monotonic()

    def publish_due(self) -> bool:
        return self.agent.publish_due(
            version=self.version,
            updates_since=self.agent.updates - self.updates_at_publish,
            seconds_since=time.monotonic() - self.published_at,
        )

    def maybe_publish(self) -> None:
        if self.publish_due():
            self.publish(checkpoint=(self.version + 1) % self.config.checkpoint_every_versions == 0)

    def release_due(self) -> bool:
        """The learner holds as many stream entries as it may: a checkpoint must cover them now."""
        return len(self.held) >= self.hold_chunks

    def final_checkpoint(self) -> None:
        if self.agent.updates > self.updates_at_checkpoint:
            self.publish(checkpoint=True)

    # -- data and learning ------------------------------------------------------------------------

    def ingest(self, entries: list[Entry]) -> None:
        """Chunks into the agent; their entries are held until a checkpoint covers them.

        Entries at or before ``covered`` are already in the agent state (a learner died after writing
        the checkpoint that covers them, before deleting them): they are deleted, not ingested twice.
        """
        if not entries:
            return
        covered = [entry_id for entry_id, _ in entries if StreamPosition.parse(entry_id) <= self.covered]
        if covered:
            self.stream.done(covered)
            entries = [entry for entry in entries if StreamPosition.parse(entry[0]) > self.covered]
        samples_before, lags, now = self.agent.samples_total, [], time.time()
        for entry_id, fields in entries:
            self.held.append(entry_id)
            machine_id = _machine_id(fields)
            if machine_id in self.voided:
                continue  # staff voided this machine's data: it never reaches the agent
            try:
                chunk = decode_stored_chunk(fields[b"c"])
                kept = self.agent.ingest(chunk, current_version=self.version, machine_id=machine_id)
                self.machine_stats.add(machine_id, chunk)
                if chunk.episode_return is not None and chunk.episode_length is not None:
                    self.evaluations.observe(chunk.episode_return, chunk.episode_length)
            except (KeyError, TypeError, ValueError) as exc:
                # The relay validated it, so this is a bug or a foreign writer: drop it rather than
                # crash-loop on it forever.
                log.warning("campaign %s: dropping stream entry %r: %s", self.campaign_id, entry_id, exc)
                continue
            lags.append(self.version - chunk.model_version)
            row = self.lag_samples.setdefault(min(lags[-1], LAG_CAP), [0, 0])
            row[0] += kept
            row[1] += chunk.steps - kept
            _count_age(self.age_samples, now - chunk.made, chunk.steps)
            _count_age(self.stream_age_samples, now - StreamPosition.parse(entry_id).ms / 1000, chunk.steps)
        if lags:
            self.policy_lag = sum(lags) / len(lags)
        metrics.ingested(
            self.campaign_id,
            chunks=len(lags),
            samples=self.agent.samples_total - samples_before,
            policy_lag=self.policy_lag if lags else None,
        )

    def apply_voids(self) -> None:
        """Drop the data of machines staff voided since the last look (one HGETALL per housekeeping).

        The set lives in Redis, not in checkpoints: a learner that resumes from a checkpoint made
        before a void applies it again on start, before it ingests anything.
        """
        voided = {int(machine) for machine in self.client.hkeys(self.keys.voided)}
        for machine_id in sorted(voided - self.voided):
            removed = self.agent.void(machine_id)
            self.client.hincrby(self.keys.voided_removed, machine_id, removed)
            log.warning("campaign %s: voided machine %d, %d samples removed", self.campaign_id, machine_id, removed)
        self.voided = voided

    def train(self) -> None:
        """Learning until the agent needs data, a model is due or the time slice is spent."""
        self.agent.train(time.monotonic() + UPDATE_SLICE_SECONDS, self.publish_due)
        if self.agent.diverged is not None:
            self.recover([self.agent.diverged])

    # -- telemetry --------------------------------------------------------------------------------

    def write_stats(self) -> None:
        now = time.monotonic()
        then, updates_then = self._stats_at
        rate = (self.agent.updates - updates_then) / max(now - then, 1e-6)
        self._stats_at = (now, self.agent.updates)
        self.updates_per_s = rate
        busy_then, chunks_then = self._drain_at
        if self.busy_s - busy_then >= DRAIN_MIN_BUSY_S:
            measured = (self.chunks_taken - chunks_then) / (self.busy_s - busy_then)
            self.drain_rate = measured if self.drain_rate == 0 else (self.drain_rate + measured) / 2
            self._drain_at = (self.busy_s, self.chunks_taken)
        stats: dict[str, Any] = {
            "algorithm": self.algorithm,
            "updates": self.agent.updates,
            "updates_per_s": round(rate, 2),
            "samples_ingested": self.agent.samples_total,
            "heartbeat": round(time.time(), 3),
            "device": str(self.device),  # cpu | cuda
            "device_name": self.device_name,  # and for CUDA, which GPU: "cuda (NVIDIA H200)"
            "host": socket.gethostname(),
            "version": self.version,
            "high_water": self.high_water,
            "drain_chunks_per_s": round(self.drain_rate, 3),  # 0: not measured yet
            "recoveries": self.recoveries,
            "held": len(self.held),  # stream entries read and in no checkpoint yet
            "policy_lag": round(self.policy_lag, 2),
            # JSON {"<versions behind>": [kept, dropped]}: the whole run's lag distribution, in samples
            "policy_lag_samples": json.dumps({str(lag): row for lag, row in sorted(self.lag_samples.items())}),
            # How long after their cut chunks were ingested, and how much of it in the stream
            "chunk_age_samples": _age_json(self.age_samples),
            "stream_age_samples": _age_json(self.stream_age_samples),
            **self.agent.stats(),
        }
        self.client.hset(self.keys.learner, mapping=stats)
        backlog = self.client.xlen(self.keys.stream) - len(self.held)  # what the learner has not read
        if isinstance(self.agent, DQNAgent) and self.config.large_batch_max > 1:
            self.agent.backlog(backlog)
        metrics.ticked(
            self.campaign_id,
            updates=self.agent.updates,
            updates_per_s=rate,
            backlog=backlog,
            version=self.version,
        )

    def log_progress(self) -> None:
        details = ", ".join(f"{k} {v}" for k, v in self.agent.stats().items())
        log.info(
            "campaign %s: v%d, %.1f updates/s, %d samples, %s",
            self.campaign_id,
            self.version,
            self.updates_per_s,
            self.agent.samples_total,
            details,
        )

    # -- the loop ---------------------------------------------------------------------------------

    def step(self) -> None:
        """One turn of the loop's work: publish, checkpoint, learn or read, whichever is due.

        Learn while the agent has what it needs (DQN: behind its replay ratio; PPO: a full rollout),
        read only otherwise. Unread chunks wait in the stream, whose unread part is the relay's
        back-pressure signal.
        """
        start = time.monotonic()
        if self.publish_due():
            self.maybe_publish()
        elif self.release_due():
            self.publish(checkpoint=True)  # what it holds leaves Redis
        elif not self.agent.wants_data():
            self.train()
            self.maybe_publish()
        else:
            wanted = self.agent.chunks_wanted(self.chunk_steps)
            entries = self.stream.read() if wanted is None else self.stream.read(count=wanted)
            start = time.monotonic()  # waiting for chunks is not work: the drain rate counts work only
            self.ingest(entries)
            self.chunks_taken += len(entries)
        self.busy_s += time.monotonic() - start

    def run(self, max_seconds: float | None) -> Outcome:
        start = time.monotonic()
        renew_every = self.lease.seconds / 3
        next_renew = start + renew_every
        next_housekeeping = start
        next_log = start + LOG_SECONDS
        self.stream.ensure_group()
        # A learner that failed to start here or elsewhere left its error for staff: this one runs.
        self.client.hdel(self.keys.learner, *LEARNER_ERROR_FIELDS)
        try:
            with self.lease.kept_alive(STARTUP_LEASES * self.lease.seconds):
                self.resume()  # reads a checkpoint from the storage server: may take a while
            next_renew = time.monotonic() + renew_every
            self.apply_voids()
            self.ingest(self.stream.claim_pending())
            while True:
                now = time.monotonic()
                if now >= next_renew:
                    if not self.lease.renew():
                        raise LeaseLost
                    next_renew = now + renew_every
                if now >= next_housekeeping:
                    self.apply_voids()
                    self.machine_stats.flush(self.client, self.keys.machine_stats)
                    self.write_stats()
                    status = self.client.get(self.keys.status)
                    if status in (b"paused", b"stopped"):
                        self.final_checkpoint()
                        self.write_stats()
                        return status.decode()  # type: ignore[return-value]
                    next_housekeeping = now + HOUSEKEEPING_SECONDS
                if max_seconds is not None and now - start >= max_seconds:
                    self.final_checkpoint()
                    self.write_stats()
                    return "time_limit"
                if SHUTDOWN.is_set():
                    self.final_checkpoint()
                    self.write_stats()
                    return "shutdown"
                if now >= next_log:
                    self.log_progress()
                    next_log = now + LOG_SECONDS
                self.step()
        except LeaseLost:
            # Not even the stats hash: it may belong to the learner that holds the lease now.
            log.warning("campaign %s: lease lost; stopping without publishing", self.campaign_id)
            return "lease_lost"


def run_learner(
    campaign_id: int,
    *,
    store: LearnerStore,
    client: redis.Redis,
    settings: LearnerSettings,
    max_seconds: float | None = None,
) -> Outcome:
    """Train a campaign's agent until it is paused or stopped, the lease is lost, or time runs out.

    Returns why it stopped: "lease_held" (another learner runs this campaign; returned at once),
    "device_unavailable" (``SOULSAI_DEVICE`` names a device this host lacks: logged, and left in the
    stats hash's ``error`` for staff; returned at once, the lease released), "paused", "stopped",
    "lease_lost", "time_limit" or "shutdown" (the worker is stopping). Every exit but "lease_lost"
    and "device_unavailable" writes a final checkpoint when there was learning since the last one.
    """
    keys = CampaignKeys(campaign_id)
    lease = Lease(client, keys.lease, settings.lease_seconds)
    if not lease.acquire():
        return "lease_held"
    try:
        try:
            learner_device(settings)
        except DeviceUnavailable as exc:
            # Once per start, without a traceback: the message says it all. The stats hash is ours
            # while we hold the lease; staff read the error there (no heartbeat: not a live learner).
            log.error("campaign %s: the learner cannot start on %s: %s", campaign_id, socket.gethostname(), exc)
            client.hset(
                keys.learner,
                mapping={"error": str(exc), "error_at": round(time.time(), 3), "host": socket.gethostname()},
            )
            return "device_unavailable"
        # Read once the lease is ours, so the version to continue from is the one no other learner moves.
        # Building the agent takes seconds on a loaded host (the first optimizer of a process imports
        # torch._dynamo: 13 s seen with a 6 s lease): the lease is renewed meanwhile.
        try:
            with lease.kept_alive(STARTUP_LEASES * lease.seconds):
                campaign = store.campaign(campaign_id)
                run = LearnerRun(campaign, store=store, lease=lease, client=client, settings=settings)
        except LeaseLost:
            log.warning("campaign %s: lease lost while starting; stopping without publishing", campaign_id)
            return "lease_lost"
        log.info(
            "campaign %s: learner started on %s, device %s (%s, consumer %s)",
            campaign_id,
            socket.gethostname(),
            run.device_name,
            campaign.env_id,
            run.stream.consumer,
        )
        metrics.learner_started(campaign_id, device=str(run.device), device_name=run.device_name)
        try:
            outcome = run.run(max_seconds)
        finally:
            metrics.learner_stopped(campaign_id)
        log.info(
            "campaign %s: learner stopped (%s) at v%d, %d updates",
            campaign_id,
            outcome,
            run.version,
            run.agent.updates,
        )
        return outcome
    finally:
        lease.release()
