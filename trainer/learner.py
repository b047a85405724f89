"""The learner's plumbing: lease, stream, publication, checkpoints, evaluation requests, heartbeat.

One learner per campaign (the lease), fed by the campaign's Redis Stream through the consumer group
"learner". The maths lives in ``trainer.dqn`` and ``trainer.ppo`` behind ``trainer.agents``; this
module only moves data and decides when. See docs/trainer.md for the data flow.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import socket
import threading
import time
import uuid
from typing import Any, Literal

import redis
import torch
from django.conf import settings
from django.db.models import Max

from client_app.policy import Policy, save_model
from client_app.protocol import decode_stored_chunk
from client_app.spaces import action_count, flat_dim
from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import model_publish
from portal.core.redis import get_redis
from trainer.agents import agent_for
from trainer.config import config_for
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

Outcome = Literal["lease_held", "paused", "stopped", "lease_lost", "time_limit", "shutdown"]

# Set when the worker shuts down (trainer.tasks connects it to Celery's worker_shutting_down): every
# learner in the process checkpoints, releases its lease and returns, so a successor starts at once.
SHUTDOWN = threading.Event()

STATE_FORMAT = 2  # 1: DQN only, {"dqn", "samples_total"} (still read)
EVAL_REQUEST_TTL_S = 3600  # an evaluation nobody finished stops being handed out after this long
EVAL_TIMEOUT_S = 120.0  # a new evaluation waits for the last one to finish, at most this long
READ_COUNT = 16  # chunks per XREADGROUP
READ_BLOCK_MS = 100  # short, so the lease, status and heartbeat stay on time while data is scarce
UPDATE_SLICE_SECONDS = 0.1  # longest run of gradient updates between two looks at the clock
HOUSEKEEPING_SECONDS = 1.0  # status check and stats hash
LOG_SECONDS = 10.0

_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLost(Exception):
    """Another learner may own the campaign now: stop at once, publish nothing."""


class Lease:
    """A Redis lease: held while the key holds our token, renewed and released compare-and-set."""

    def __init__(self, client: redis.Redis, key: str, seconds: float):
        self.client = client
        self.key = key
        self.seconds = seconds
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.seconds * 1000))

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self._ttl_ms))

    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.token, self._ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])


Entry = tuple[bytes, dict[bytes, bytes]]


class ExperienceStream:
    """The campaign's chunk stream, read through the consumer group and emptied as it is ingested.

    Entries are XACKed *and* XDELeted once they are in the replay buffer: the relay reads XLEN as the
    backlog the learner has not taken yet, and slows clients down when it grows.
    """

    def __init__(self, client: redis.Redis, keys: CampaignKeys, consumer: str):
        self.client = client
        self.stream = keys.stream
        self.group = keys.group
        self.consumer = consumer

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def claim_orphans(self) -> list[Entry]:
        """Take over what earlier (dead) consumers read but never acknowledged.

        Clients were told those chunks are safe, so they must reach a buffer. We hold the lease, so
        every other consumer of the group is dead: no idle time is required.
        """
        claimed: list[Entry] = []
        start: Any = "0-0"
        while True:
            next_id, entries, *_ = self.client.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=0, start_id=start, count=100
            )
            claimed.extend((entry_id, fields) for entry_id, fields in entries if entry_id is not None)
            if next_id in (b"0-0", "0-0"):
                break
            start = next_id
        # Entries trimmed from the stream (MAXLEN) while pending stay in our PEL on Redis < 7 with no
        # data: nothing to ingest, so acknowledge them.
        kept = {entry_id for entry_id, _ in claimed}
        pending = self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=10_000, consumername=self.consumer
        )
        gone = [p["message_id"] for p in pending if p["message_id"] not in kept]
        if gone:
            self.done(gone)
        for consumer in self.client.xinfo_consumers(self.stream, self.group):
            name = consumer["name"]
            if consumer["pending"] == 0 and name not in (self.consumer, self.consumer.encode()):
                self.client.xgroup_delconsumer(self.stream, self.group, name)
        return claimed

    def read(self, count: int = READ_COUNT, block_ms: int = READ_BLOCK_MS) -> list[Entry]:
        response = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return [entry for _, entries in response or [] for entry in entries]

    def done(self, ids: list[bytes]) -> None:
        """Acknowledge and delete ingested entries, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()


def learner_device() -> torch.device:
    """CUDA when there is one (unless SOULSAI_DEVICE=cpu); on the CPU, a bounded number of threads."""
    if settings.SOULSAI_DEVICE != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    # A learner shares its machine with the worker's other processes: one thread unless told otherwise.
    torch.set_num_threads(int(os.environ.get("SOULSAI_TORCH_THREADS", "1")))
    return torch.device("cpu")


def _read_file(field: Any) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


class LearnerRun:
    """One run of a campaign's learner, from resume to exit (lease already held)."""

    def __init__(self, campaign: Campaign, lease: Lease, client: redis.Redis):
        self.campaign_id = campaign.id
        self.lease = lease
        self.client = client
        self.keys = CampaignKeys(campaign.id)
        self.algorithm = campaign.algorithm
        self.config = config_for(campaign.env_id, campaign.hyperparams, algorithm=campaign.algorithm)
        self.device = learner_device()
        self.agent = agent_for(
            campaign.algorithm,
            self.config,
            obs_dim=flat_dim(campaign.observation_space),
            n_actions=action_count(campaign.action_space),
            action_start=int(campaign.action_space.get("start", 0)),
            device=self.device,
        )
        self.spec = self.agent.spec
        self.high_water = self.agent.stream_high_water(campaign.chunk_steps)
        consumer = f"{socket.gethostname()}:{os.getpid()}:{lease.token[:8]}"
        self.stream = ExperienceStream(client, self.keys, consumer)
        self.next_eval_at = self.config.eval_every_samples  # samples_total of the next evaluation
        self.eval_pending: tuple[int, float] | None = None  # (version, monotonic time asked) in progress
        # Version numbers never go back, even past versions published after the last checkpoint.
        newest = campaign.model_versions.aggregate(v=Max("version"))["v"] or 0
        self.version = max(campaign.model_version, newest)
        self.updates_at_publish = 0
        self.updates_at_checkpoint = 0
        self.published_at = time.monotonic()
        self._stats_at = (time.monotonic(), 0)
        self.updates_per_s = 0.0

    # -- resume and checkpoints -------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the newest usable checkpoint: its published weights plus the learner state."""
        checkpoints = (
            Campaign.objects.get(pk=self.campaign_id).model_versions.exclude(state="").order_by("-version")
        )
        for checkpoint in checkpoints:
            try:
                self._load_checkpoint(checkpoint)
            except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
                # A lost or damaged file must not crash-loop the learner: fall back to an older one.
                log.warning(
                    "campaign %s: cannot resume from v%d: %s", self.campaign_id, checkpoint.version, exc
                )
                continue
            log.info(
                "campaign %s: resumed from checkpoint v%d (%d updates, %d samples)",
                self.campaign_id,
                checkpoint.version,
                self.agent.updates,
                self.agent.samples_total,
            )
            break
        self.updates_at_publish = self.updates_at_checkpoint = self.agent.updates
        self._stats_at = (time.monotonic(), self.agent.updates)
        self._schedule_next_eval()

    def _load_checkpoint(self, checkpoint: ModelVersion) -> None:
        policy = Policy.from_bytes(_read_file(checkpoint.weights))
        if policy.spec != self.spec:
            raise ValueError(f"its architecture {policy.spec} is not the campaign's {self.spec}")
        # Only ever the server's own files, and never pickle: weights_only=True.
        state = torch.load(io.BytesIO(_read_file(checkpoint.state)), map_location="cpu", weights_only=True)
        if state.get("format") == 1 and self.algorithm == "dqn":
            state = {"format": STATE_FORMAT, "algorithm": "dqn", "agent": {"dqn": state["dqn"], "samples_total": state["samples_total"]}}
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown learner state format {state.get('format')!r}")
        if state.get("algorithm") != self.algorithm:
            raise ValueError(f"it is a {state.get('algorithm')} checkpoint, the campaign runs {self.algorithm}")
        # Load into a fresh agent first, so a failure half-way leaves this run untouched.
        agent = agent_for(
            self.algorithm,
            self.config,
            obs_dim=self.agent.obs_dim,
            n_actions=self.agent.n_actions,
            action_start=self.agent.action_start,
            device=self.device,
        )
        agent.load(policy, state["agent"])
        self.agent = agent

    def learner_state(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(
            {
                "format": STATE_FORMAT,
                "algorithm": self.algorithm,
                "config": self.config.to_dict(),
                "agent": self.agent.state_dict(),
            },
            buffer,
        )
        return buffer.getvalue()

    def _schedule_next_eval(self) -> None:
        """The next evaluation comes at the next multiple of eval_every_samples past the sample count."""
        every = self.config.eval_every_samples
        if every:
            self.next_eval_at = (self.agent.samples_total // every + 1) * every

    def eval_due(self) -> bool:
        """Time for the next evaluated checkpoint: enough new samples, and the last evaluation is
        finished (or timed out: its clients left), so that each one completes rather than being
        superseded half-way by the next."""
        every = self.config.eval_every_samples
        if not every or self.agent.samples_total < self.next_eval_at:
            return False
        if self.eval_pending is None:
            return True
        version, asked_at = self.eval_pending
        done = int(self.client.hget(self.keys.evals(version), "episodes") or 0)
        if done >= self.config.eval_episodes or time.monotonic() - asked_at > EVAL_TIMEOUT_S:
            self.eval_pending = None
            return True
        return False

    def publish(self, *, checkpoint: bool) -> None:
        """Publish the online network as the next version; a checkpoint also carries the learner state."""
        # Renewing first proves the lease is still ours: a learner that lost it must never publish.
        if not self.lease.renew():
            raise LeaseLost
        version = self.version + 1
        evaluate = self.eval_due()
        checkpoint = checkpoint or evaluate
        weights = save_model(
            self.spec,
            self.agent.params(),
            version=version,
            epsilon=self.agent.exploration(),
            obs_norm=self.agent.obs_norm(),
        )
        model = model_publish(
            campaign_id=self.campaign_id,
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
        if evaluate:
            self.request_evaluation(model.notice())
        self.published_at = time.monotonic()

    def request_evaluation(self, notice: dict[str, Any]) -> None:
        """Ask clients for greedy episodes of this checkpoint: the relay hands them out one at a time,
        with the ack of an episode's last chunk (docs/protocol.md, "Evaluation")."""
        episodes = self.config.eval_episodes
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.eval_request)
        pipe.hset(self.keys.eval_request, mapping={**notice, "episodes": episodes, "assigned": 0})
        pipe.expire(self.keys.eval_request, EVAL_REQUEST_TTL_S)
        pipe.hset(self.keys.evals(notice["version"]), "wanted", episodes)
        pipe.execute()
        self._schedule_next_eval()
        self.eval_pending = (int(notice["version"]), time.monotonic())
        log.info("campaign %s: asked clients for %d evaluation episodes of v%d", self.campaign_id, episodes, notice["version"])

    def publish_due(self) -> bool:
        return self.agent.publish_due(
            version=self.version,
            updates_since=self.agent.updates - self.updates_at_publish,
            seconds_since=time.monotonic() - self.published_at,
        )

    def maybe_publish(self) -> None:
        if self.publish_due():
            self.publish(checkpoint=(self.version + 1) % self.config.checkpoint_every_versions == 0)

    def final_checkpoint(self) -> None:
        if self.agent.updates > self.updates_at_checkpoint:
            self.publish(checkpoint=True)

    # -- data and learning ------------------------------------------------------------------------

    def ingest(self, entries: list[Entry]) -> None:
        """Chunks into the replay buffer, then acknowledge and delete their entries."""
        if not entries:
            return
        for entry_id, fields in entries:
            try:
                self.agent.ingest(decode_stored_chunk(fields[b"c"]), current_version=self.version)
            except (KeyError, TypeError, ValueError) as exc:
                # The relay validated it, so this is a bug or a foreign writer: drop it rather than
                # crash-loop on it forever.
                log.warning("campaign %s: dropping stream entry %r: %s", self.campaign_id, entry_id, exc)
                continue
        self.stream.done([entry_id for entry_id, _ in entries])

    def train(self) -> None:
        """Learning until the agent needs data, a model is due or the time slice is spent."""
        self.agent.train(time.monotonic() + UPDATE_SLICE_SECONDS, self.publish_due)

    # -- telemetry --------------------------------------------------------------------------------

    def write_stats(self) -> None:
        now = time.monotonic()
        then, updates_then = self._stats_at
        rate = (self.agent.updates - updates_then) / max(now - then, 1e-6)
        self._stats_at = (now, self.agent.updates)
        self.updates_per_s = rate
        stats: dict[str, Any] = {
            "algorithm": self.algorithm,
            "updates": self.agent.updates,
            "updates_per_s": round(rate, 2),
            "samples_ingested": self.agent.samples_total,
            "heartbeat": round(time.time(), 3),
            "device": str(self.device),
            "version": self.version,
            "high_water": self.high_water,
            **self.agent.stats(),
        }
        self.client.hset(self.keys.learner, mapping=stats)

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

    def run(self, max_seconds: float | None) -> Outcome:
        start = time.monotonic()
        renew_every = self.lease.seconds / 3
        next_renew = start + renew_every
        next_housekeeping = start
        next_log = start + LOG_SECONDS
        self.stream.ensure_group()
        self.resume()
        self.ingest(self.stream.claim_orphans())
        try:
            while True:
                now = time.monotonic()
                if now >= next_renew:
                    if not self.lease.renew():
                        raise LeaseLost
                    next_renew = now + renew_every
                if now >= next_housekeeping:
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

                # Learn while the agent has what it needs (DQN: behind its replay ratio; PPO: a full
                # rollout), read only otherwise. Unread chunks wait in the stream, whose length is
                # the relay's back-pressure signal.
                if self.publish_due():
                    self.maybe_publish()
                elif not self.agent.wants_data():
                    self.train()
                    self.maybe_publish()
                else:
                    self.ingest(self.stream.read())
        except LeaseLost:
            # Not even the stats hash: it may belong to the learner that holds the lease now.
            log.warning("campaign %s: lease lost; stopping without publishing", self.campaign_id)
            return "lease_lost"


def run_learner(campaign_id: int, *, max_seconds: float | None = None) -> Outcome:
    """Train a campaign's agent until it is paused or stopped, the lease is lost, or time runs out.

    Returns why it stopped: "lease_held" (another learner runs this campaign; returned at once),
    "paused", "stopped", "lease_lost", "time_limit" or "shutdown" (the worker is stopping). Every exit but "lease_lost" writes a final
    checkpoint when there was learning since the last one.
    """
    client = get_redis()
    keys = CampaignKeys(campaign_id)
    lease = Lease(client, keys.lease, settings.SOULSAI_LEASE_SECONDS)
    if not lease.acquire():
        return "lease_held"
    try:
        campaign = Campaign.objects.get(pk=campaign_id)
        run = LearnerRun(campaign, lease, client)
        log.info(
            "campaign %s: learner started on %s (%s, consumer %s)",
            campaign_id,
            run.device,
            campaign.env_id,
            run.stream.consumer,
        )
        outcome = run.run(max_seconds)
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
