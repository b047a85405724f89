"""The relay's write path: a validated chunk goes straight into the campaign's Redis Stream.

Experience never rides the Channels layer (docs/architecture.md, decision 1). One Lua script
(``portal.relay.store``) stores the chunk, de-duplicates it by id and counts it, atomically, so an
ack means "stored exactly once". Evaluation results: ``portal.relay.evaluation``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings

from client_app import protocol as P
from client_app.protocol import Chunk, ModelNotice
from client_app.protocol.codes import MAX_WAIT_MS
from client_app.protocol.messages import CLIENT_VERSION_CHARS
from portal.core.redis import CLIENT_RELEASE_KEY
from portal.relay.evaluation import ask_notice
from portal.relay.store import (
    REJECT_LUA,
    STORE_CHUNK_LUA,
    RejectCall,
    StoreChunkCall,
    StoreOutcome,
    outcome_entry,
    run_script,
)
from trainer.keys import CampaignKeys

# A campaign's key names, made once per process instead of twenty f-strings per chunk.
campaign_keys = functools.lru_cache(maxsize=4096)(CampaignKeys)

FULL_WAIT_MS = 2000  # how long a client waits before resending a chunk refused at the stream's cap

# Rejections that say nothing bad about the machine: they are neither counted nor flagged.
_NOT_THE_MACHINES_FAULT = frozenset({P.R_NOT_RUNNING, P.R_RATE_LIMITED})


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    model_version: int  # the campaign's current model version
    backlog: int  # chunks in the stream that the learner has not taken yet
    flagged: bool = False  # the machine is flagged for bad data: its answers carry extra wait_ms
    evaluate: int = 0  # a model version this client is asked to play one greedy episode of (0: none)
    high_water: int = 0  # the backlog (chunks) past which the learner wants clients slower (0: default)
    evaluate_url: str = ""  # the url and sha256 of that version's model file
    evaluate_sha256: str = ""
    drain_per_s: float = 0.0  # the live learner's chunks per second of work (0: none live, or unmeasured)

    @property
    def wait_ms(self) -> int:
        """The back-pressure this ack asks for (without a flagged machine's extra hold)."""
        return backoff_ms(self.backlog, self.high_water, drain_per_s=self.drain_per_s)

    @property
    def eval_notice(self) -> ModelNotice | None:
        """The ack's ``evaluate`` field: the checkpoint to play, or None."""
        return ask_notice(self.evaluate, self.evaluate_url, self.evaluate_sha256)

    @property
    def acked(self) -> bool:
        return self.outcome.acked


@dataclass(frozen=True)
class RejectionResult:
    bad_in_window: int  # bad-data rejections of this machine in the current flagging window
    flagged: bool


def rate_wait_ms(now: float | None = None) -> int:
    """Until the next one-second rate window opens: what a rate-limited client waits."""
    now = time.time() if now is None else now
    return max(1, int((1.0 - (now % 1.0)) * 1000) + 1)


def flag_wait_ms(flagged: bool) -> int:
    """The extra hold every answer to a flagged machine carries."""
    return settings.SOULSAI_FLAG_WAIT_MS if flagged else 0


RAMP_MS = 2000  # the longest wait without a live learner's drain rate


def backoff_ms(backlog: int, high_water: int = 0, *, drain_per_s: float = 0.0) -> int:
    """How long a client should hold back when the learner is behind (0 when it keeps up).

    Proportional to how far the stream is past its high-water mark, up to 2 s per ack, so that clients
    slow down smoothly instead of the stream dropping data at its hard cap. The learner may name its
    own mark (``high_water`` > 0): PPO wants about one rollout waiting, since data that waits longer
    is played by a policy too old to learn from.

    Once the ramp is at its 2 s, while a learner is live and has measured how many chunks a second of
    its work takes (``drain_per_s``), the wait is the time it needs to work through the chunks past its
    mark, up to the client's own limit (``MAX_WAIT_MS``, 60 s). Clients that outrun it even at 2 s an ack
    (eight unpaced ones on a slow learner) are then held to its rate, with a backlog of about one
    chunk per client past the mark, and none is held longer than the learner needs: it is not left
    idle while clients wait. Without a live learner (starting, or its host died and a standby takes
    over) clients keep playing at 2 s an ack: their chunks wait for the next learner.
    """
    default = settings.SOULSAI_STREAM_HIGH_WATER
    mark = high_water if high_water > 0 else default
    excess = backlog - mark
    if excess <= 0:
        return 0
    # 25 ms per chunk past the server's mark. A learner that names a tighter mark gets a slope as much
    # steeper, so that the backlog settles as close to its mark, relative to it, as to the server's:
    # the backlog clients fill in the time the learner needs to train on a chunk is what sets the wait,
    # and at 25 ms a chunk two unpaced clients kept about 60 chunks past any mark.
    ramp = round(25.0 * max(1.0, default / mark) * excess)
    if ramp < RAMP_MS or drain_per_s <= 0:
        return min(RAMP_MS, ramp)
    # Past the ramp's 2 s: clients outrun the learner even so. The wait the learner needs to work
    # through the backlog, never less than the ramp's (below it the ramp alone held two unpaced
    # LunarLander clients to a DQN learner, 3 of 3 runs to 200 within 100k env steps).
    return min(MAX_WAIT_MS, max(RAMP_MS, round(1000.0 * excess / drain_per_s)))


async def chunk_store(
    *,
    client: aioredis.Redis,
    campaign_id: int,
    machine_id: int,
    frame: bytes,
    chunk: Chunk,
    max_policy_lag: int = 0,
) -> StoreResult:
    """Store one validated chunk and count it, unless its machine sent its id before.

    ``frame`` is the validated chunk re-encoded (``pack(chunk.to_wire())``), never the frame as it
    came: unknown keys a client adds are not stored. One round trip: the script also checks revocation, campaign status, the machine's rate limit and
    the model version (it exists, and is at most ``max_policy_lag`` versions old when that is > 0)
    and the stream's caps (entries and bytes).
    """
    call = StoreChunkCall(
        keys=campaign_keys(campaign_id),
        chunk_id=chunk.id,
        machine_id=machine_id,
        frame=frame,
        steps=chunk.steps,
        episode_done=chunk.episode_done,
        episode_return=float(chunk.episode_return or 0.0),
        now=int(time.time()),
        maxlen=settings.SOULSAI_STREAM_MAXLEN,
        max_bytes=settings.SOULSAI_STREAM_MAX_BYTES,
        model_version=chunk.model_version,
        rate_limit=settings.SOULSAI_RATE_CHUNKS_PER_S,
        flagged_rate_limit=settings.SOULSAI_FLAG_RATE_CHUNKS_PER_S,
        max_policy_lag=max_policy_lag,
        outcome_entry=outcome_entry(chunk.outcome),
    )
    outcome, model_version, backlog, flagged, *rest = await run_script(
        client, STORE_CHUNK_LUA, keys=call.key_list(), args=call.args()
    )
    evaluate, high_water, url, sha256, drain = (rest + [0, 0, None, None, 0])[:5]
    return StoreResult(
        StoreOutcome(int(outcome)), int(model_version), int(backlog), bool(flagged), int(evaluate),
        int(high_water), (url or b"").decode(), (sha256 or b"").decode(), int(drain) / 1000,
    )


class FrameGate:
    """One connection's budget before any decoding, in-process: frames per second and bad frames.

    ``admit`` is a token bucket of ``rate`` frames a second (burst: one second's worth); ``strike``
    counts a bad frame (unreadable, an unknown type, or over the rate) in a window of ``window_s``
    seconds. From the tenth bad frame on the relay answers slower (``slow_s``: it waits before reading
    on, so the client's socket backs up), and at ``limit`` bad frames it closes the connection.
    """

    SLOW_FROM = 10

    def __init__(self, *, rate: int, limit: int, window_s: float = 60.0):
        self.rate = max(1, rate)
        self.tokens = float(self.rate)
        self.at = time.monotonic()
        self.limit = limit
        self.window_s = window_s
        self.bad = 0
        self.bad_since = self.at

    def admit(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def strike(self) -> int:
        now = time.monotonic()
        if now - self.bad_since > self.window_s:
            self.bad, self.bad_since = 0, now
        self.bad += 1
        return self.bad

    @property
    def exhausted(self) -> bool:
        return self.bad >= self.limit

    @property
    def slow_s(self) -> float:
        return 0.0 if self.bad < self.SLOW_FROM else min(0.5, 0.01 * (self.bad - self.SLOW_FROM + 1))


async def rejection_record(
    *, client: aioredis.Redis, campaign_id: int, machine_id: int, code: str
) -> RejectionResult:
    """Count a chunk refused for good against its machine, flagging a machine that keeps at it.

    A machine is flagged once ``SOULSAI_FLAG_REJECTIONS`` bad-data rejections fall within one
    window of ``SOULSAI_FLAG_WINDOW_S`` seconds (a fixed window that opens at the first one). A
    chunk refused only for an outdated model (``model_version`` after a model moved on) is counted
    but not held against the machine: an honest client that was offline for a while sends those (and
    chunks made too long ago, ``expired``).
    """
    call = RejectCall(
        keys=CampaignKeys(campaign_id),
        machine_id=machine_id,
        code=code,
        counts=code not in _NOT_THE_MACHINES_FAULT and code not in (P.R_MODEL_VERSION, P.R_EXPIRED),
        window_s=settings.SOULSAI_FLAG_WINDOW_S,
        threshold=settings.SOULSAI_FLAG_REJECTIONS,
        now=int(time.time()),
    )
    bad, flagged = await run_script(client, REJECT_LUA, keys=call.key_list(), args=call.args())
    return RejectionResult(int(bad), bool(flagged))


async def current_model(*, client: aioredis.Redis, campaign_id: int) -> ModelNotice | None:
    """The campaign's current model notice, or None before the first."""
    raw = await client.hgetall(CampaignKeys(campaign_id).model)
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return ModelNotice(version=int(data["version"]), url=data["url"], sha256=data["sha256"])


async def welcome_model(*, client: aioredis.Redis, campaign_id: int, max_policy_lag: int = 0) -> ModelNotice | None:
    """The model a (re)connecting client starts with: the best checkpoint while the roll-out gate holds
    the newest evaluated one back (``CampaignKeys.agent``, set by ``campaigns.services.checkpoint_gate``),
    else the current model. The staleness bound wins: where the best checkpoint is more than
    ``max_policy_lag`` (> 0) versions behind the current model, chunks played with it would all be
    refused, so the client starts with the current one. Connected clients follow each newer version."""
    keys = CampaignKeys(campaign_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.agent)
    pipe.hgetall(keys.model)
    agent, current = (_notice(raw) for raw in await pipe.execute())
    if agent is None or current is None:
        return current
    if max_policy_lag and current.version - agent.version > max_policy_lag:
        return current
    return agent


def _notice(raw: dict[bytes, bytes]) -> ModelNotice | None:
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return ModelNotice(version=int(data["version"]), url=data["url"], sha256=data["sha256"])


async def client_release(*, client: aioredis.Redis) -> str | None:
    """The newest signed client version the portal offers, or None if Redis does not know one."""
    raw = await client.get(CLIENT_RELEASE_KEY)
    return raw.decode()[:CLIENT_VERSION_CHARS] if raw else None


async def current_status(*, client: aioredis.Redis, campaign_id: int) -> str | None:
    """The campaign's status as the relay and learner see it (None if Redis does not know it)."""
    raw = await client.get(CampaignKeys(campaign_id).status)
    return raw.decode() if raw else None


async def machine_seen(*, client: aioredis.Redis, campaign_id: int, machine_id: int) -> None:
    """Mark the machine as connected now (the campaign's ``clients`` sorted set)."""
    await client.zadd(CampaignKeys(campaign_id).clients, {str(machine_id): int(time.time())})
