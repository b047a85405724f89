"""The relay's write path: a validated chunk goes straight into the campaign's Redis Stream.

Experience never rides the Channels layer (docs/architecture.md, decision 1). One Lua script stores
the chunk, de-duplicates it by id and counts it, atomically, so an ack means "stored exactly once".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings

from client_app import protocol as P
from client_app.protocol import Chunk, EvalResult
from portal.core import redis as R
from portal.core.redis import DEDUP_TTL_SECONDS, RETURNS_KEPT, STORE_CHUNK_LUA
from trainer.keys import CampaignKeys

STORED, DUPLICATE, NOT_RUNNING, UNKNOWN_MODEL, STALE_MODEL, RATE_LIMITED, REVOKED, FULL = (
    R.OUT_STORED,
    R.OUT_DUPLICATE,
    R.OUT_NOT_RUNNING,
    R.OUT_UNKNOWN_MODEL,
    R.OUT_STALE_MODEL,
    R.OUT_RATE_LIMITED,
    R.OUT_REVOKED,
    R.OUT_FULL,
)
FULL_WAIT_MS = 2000  # how long a client waits before resending a chunk refused at the stream's cap

# Rejections that say nothing bad about the machine: they are neither counted nor flagged.
_NOT_THE_MACHINES_FAULT = frozenset({P.R_NOT_RUNNING, P.R_RATE_LIMITED})

_scripts: dict[tuple[int, str], object] = {}


def _script(client: aioredis.Redis, source: str):
    # register_script is per client (connection pool): one per event loop, see get_async_redis.
    key = (id(client), source)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = client.register_script(source)
    return script


@dataclass(frozen=True)
class StoreResult:
    outcome: int  # STORED, DUPLICATE, NOT_RUNNING, UNKNOWN_MODEL, STALE_MODEL, RATE_LIMITED, REVOKED or FULL
    model_version: int  # the campaign's current model version
    backlog: int  # chunks in the stream that the learner has not taken yet
    flagged: bool = False  # the machine is flagged for bad data: its answers carry extra wait_ms
    evaluate: int = 0  # a model version this client is asked to play one greedy episode of (0: none)
    high_water: int = 0  # the backlog (chunks) past which the learner wants clients slower (0: default)
    evaluate_url: str = ""  # the url and sha256 of that version's model file
    evaluate_sha256: str = ""

    @property
    def eval_notice(self) -> dict | None:
        """The ack's ``evaluate`` field: {version, url, sha256} of the checkpoint to play, or None."""
        if not (self.evaluate and self.evaluate_url and self.evaluate_sha256):
            return None
        return {"version": self.evaluate, "url": self.evaluate_url, "sha256": self.evaluate_sha256}

    @property
    def acked(self) -> bool:
        return self.outcome in (STORED, DUPLICATE)


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


def backoff_ms(backlog: int, high_water: int = 0) -> int:
    """How long a client should hold back when the learner is behind (0 when it keeps up).

    Proportional to how far the stream is past its high-water mark, capped at 2 s per ack, so that
    clients slow down smoothly instead of the stream dropping data at its hard cap. The learner may
    name its own mark (``high_water`` > 0): PPO wants about one rollout waiting, since data that
    waits longer is played by a policy too old to learn from.
    """
    excess = backlog - (high_water if high_water > 0 else settings.SOULSAI_STREAM_HIGH_WATER)
    return 0 if excess <= 0 else min(2000, 25 * excess)


def win_flag(outcome: dict | None) -> str:
    """A boss fight's result as the store scripts take it: '1' won, '0' lost, '' not a boss fight."""
    return "" if outcome is None else ("1" if outcome["win"] else "0")


def hp_left(outcome: dict | None) -> tuple[str, str]:
    """Boss and player HP left at a fight's end as the store scripts take them ('' and '' if not sent).

    Both or neither: the protocol lets a client leave either out, and the two means are kept over the
    same fights. Four decimals (a hundredth of a percent) keep the outcomes list short.
    """
    if outcome is None or outcome.get("boss_hp") is None or outcome.get("player_hp") is None:
        return "", ""
    return f"{outcome['boss_hp']:.4f}", f"{outcome['player_hp']:.4f}"


def outcome_entry(outcome: dict | None) -> str:
    """A fight as the outcomes list keeps it: '1 0.0000 0.4521' (won, boss HP, player HP), '0' (no HP)."""
    boss_hp, player_hp = hp_left(outcome)
    return " ".join(filter(None, (win_flag(outcome), boss_hp, player_hp)))


async def chunk_store(
    *,
    client: aioredis.Redis,
    campaign_id: int,
    machine_id: int,
    frame: bytes,
    chunk: Chunk,
    max_policy_lag: int = 0,
) -> StoreResult:
    """Store one validated chunk (its original frame) and count it, unless its id was seen before.

    One round trip: the script also checks revocation, campaign status, the machine's rate limit and
    the model version (it exists, and is at most ``max_policy_lag`` versions old when that is > 0).
    """
    keys = CampaignKeys(campaign_id)
    now = time.time()
    outcome, model_version, backlog, flagged, *rest = await _script(client, STORE_CHUNK_LUA)(
        keys=[
            keys.dedup(chunk.id),
            keys.stream,
            keys.stats,
            keys.returns,
            keys.clients,
            keys.machine_samples,
            keys.machine_episodes,
            keys.status,
            keys.model,
            keys.rate(machine_id, int(now)),
            keys.flagged,
            keys.revoked,
            keys.machine_wins,
            keys.eval_request,
            keys.outcomes,
            keys.learner,
        ],
        args=[
            frame,
            machine_id,
            chunk.steps,
            1 if chunk.episode_done else 0,
            repr(float(chunk.episode_return or 0.0)),
            int(now),
            settings.SOULSAI_STREAM_MAXLEN,
            DEDUP_TTL_SECONDS,
            chunk.model_version,
            RETURNS_KEPT,
            settings.SOULSAI_RATE_CHUNKS_PER_S,
            settings.SOULSAI_FLAG_RATE_CHUNKS_PER_S,
            max_policy_lag,
            outcome_entry(chunk.outcome),
        ],
    )
    evaluate, high_water, url, sha256 = (rest + [0, 0, None, None])[:4]
    return StoreResult(
        int(outcome), int(model_version), int(backlog), bool(flagged), int(evaluate), int(high_water),
        (url or b"").decode(), (sha256 or b"").decode(),
    )


async def eval_store(*, client: aioredis.Redis, campaign_id: int, result: EvalResult) -> int:
    """Record one evaluation episode exactly once: 1 stored, 0 duplicate, -2 unknown model version."""
    keys = CampaignKeys(campaign_id)
    return int(
        await _script(client, R.STORE_EVAL_LUA)(
            keys=[keys.dedup("eval:" + result.id), keys.evals(result.model_version), keys.stats, keys.model],
            args=[
                repr(result.episode_return),
                result.episode_length,
                win_flag(result.outcome),
                result.model_version,
                DEDUP_TTL_SECONDS,
                *hp_left(result.outcome),
            ],
        )
    )


async def rejection_record(
    *, client: aioredis.Redis, campaign_id: int, machine_id: int, code: str
) -> RejectionResult:
    """Count a chunk refused for good against its machine, flagging a machine that keeps at it.

    A machine is flagged once ``SOULSAI_FLAG_REJECTIONS`` bad-data rejections fall within one
    window of ``SOULSAI_FLAG_WINDOW_S`` seconds (a fixed window that opens at the first one). A
    chunk refused only for an outdated model (``model_version`` after a model moved on) is counted
    but not held against the machine: an honest client that was offline for a while sends those.
    """
    keys = CampaignKeys(campaign_id)
    now = time.time()
    counts = code not in _NOT_THE_MACHINES_FAULT and code != P.R_MODEL_VERSION
    bad, flagged = await _script(client, R.REJECT_LUA)(
        keys=[
            keys.machine_rejections,
            keys.rejection_codes,
            keys.bad_window(machine_id),
            keys.flagged,
            keys.rate(machine_id, int(now)),
        ],
        args=[
            machine_id,
            code,
            1 if counts else 0,
            settings.SOULSAI_FLAG_WINDOW_S,
            settings.SOULSAI_FLAG_REJECTIONS,
            int(now),
        ],
    )
    return RejectionResult(int(bad), bool(flagged))


async def current_model(*, client: aioredis.Redis, campaign_id: int) -> dict | None:
    """The campaign's current model notice ({version, url, sha256}) or None before the first."""
    raw = await client.hgetall(CampaignKeys(campaign_id).model)
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return {"version": int(data["version"]), "url": data["url"], "sha256": data["sha256"]}


async def current_status(*, client: aioredis.Redis, campaign_id: int) -> str | None:
    """The campaign's status as the relay and learner see it (None if Redis does not know it)."""
    raw = await client.get(CampaignKeys(campaign_id).status)
    return raw.decode() if raw else None


async def machine_seen(*, client: aioredis.Redis, campaign_id: int, machine_id: int) -> None:
    await client.zadd(CampaignKeys(campaign_id).clients, {str(machine_id): int(time.time())})
