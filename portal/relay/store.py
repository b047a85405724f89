"""The relay's store path in Redis: the Lua scripts, their outcomes, and their keys and arguments.

Every check that needs Redis state (revocation, campaign status, rate, model version, the stream's
cap) and the store itself happen in ONE script call, so an ack means "stored exactly once" and the
hot path stays one round trip (docs/architecture.md, "Loss and back-pressure policy"). Each script's
KEYS and ARGV are built by one dataclass here (``StoreChunkCall``, ``RejectCall``) from named fields,
in the order the script reads them. The evaluation script lives with the rest of the relay's
evaluation code in ``portal.relay.evaluation``.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from client_app.protocol import MAX_AGE_S, MAX_AHEAD_S
from trainer.keys import CampaignKeys

# A won fight counts on the leaderboards only if it was played with a model at most this many versions
# older than the current one. The learner publishes at most one version a second (trainer.config), so
# a connected client's fights are a few versions behind at most; a client that played on for minutes
# offline with an old model (older clients have no offline backlog limit) is far past it.
BOARD_WIN_MAX_LAG = 30
RETURNS_KEPT = 100  # episode returns (and fight outcomes) kept per campaign for the recent figures
# How long a chunk id is remembered: a resend within it is a duplicate. Chunks carry the time they were
# made and are refused past P.MAX_AGE_S (6 days), made at most P.MAX_AHEAD_S (1 day) ahead of the
# server's clock: a chunk accepted again is at most 7 days past its first store, so with an hour to
# spare a resend after the window is never counted twice.
DEDUP_TTL_SECONDS = MAX_AGE_S + MAX_AHEAD_S + 3600
# How long a hand-out of an evaluation episode stays answerable: the learner's request lives an hour
# (trainer.evaluation.REQUEST_TTL_S), and a client finishes the episode it was handed within that.
EVAL_HANDED_TTL_S = 3600


async def run_script(client: aioredis.Redis, source: str, *, keys: list[str], args: list[Any]) -> Any:
    """Run a Lua script by its sha (loaded on first use), with its KEYS and ARGV.

    Calls made in the same turn of the event loop share one round trip (``ScriptBatch``).
    """
    # One batch per client, and so per event loop (see get_async_redis).
    batch = _batches.get(id(client))
    if batch is None:
        batch = _batches[id(client)] = ScriptBatch(client)
    return await batch.call(source, keys, args)


class ScriptBatch:
    """Script calls that one event loop makes in the same turn, sent to Redis as one pipeline.

    Under load, many connections reach their store call in the same turn of the loop. One round trip
    for all of them (one pooled connection, one write, one read) instead of one each cut the relay's
    CPU per chunk by a third (bench/relay.py, 1,000 clients). Each call still gets its own result or
    error, and the relay acks a chunk only after its own script answered: batching changes nothing
    of what an ack means. A connection's frames are handled one at a time, so its scripts still run
    in the order it sent them; a script's effects are its own (all or nothing), whatever runs beside it.
    """

    MAX_CALLS = 256  # per pipeline: a bounded write and read, however many connections are busy

    def __init__(self, client: aioredis.Redis):
        self.client = client
        self.calls: list[tuple[str, list[str], list[Any], asyncio.Future]] = []
        self.scheduled = False
        self.sending: set[asyncio.Task] = set()

    def call(self, source: str, keys: list[str], args: list[Any]) -> asyncio.Future:
        """A future of the script's result: sent with the other calls of this turn of the loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.calls.append((source, keys, args, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self.scheduled = False
        calls, self.calls = self.calls, []
        for start in range(0, len(calls), self.MAX_CALLS):
            task = asyncio.ensure_future(self._send(calls[start : start + self.MAX_CALLS]))
            self.sending.add(task)  # a running task needs a reference
            task.add_done_callback(self.sending.discard)

    async def _send(self, calls: list[tuple[str, list[str], list[Any], asyncio.Future]]) -> None:
        try:
            results = await self._pipeline(calls)
            # A Redis that restarted (or a new one) does not know the scripts yet: load, run those again.
            missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if missing:
                for source in {calls[i][0] for i in missing}:
                    await self.client.script_load(source)
                for i, result in zip(missing, await self._pipeline([calls[i] for i in missing]), strict=True):
                    results[i] = result
        except Exception as exc:  # Redis unreachable: every caller of this batch hears it
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), result in zip(calls, results, strict=True):
            if future.done():
                continue  # its caller is gone (the connection closed); the script ran all the same
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(self, calls: list[tuple[str, list[str], list[Any], asyncio.Future]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for source, keys, args, _ in calls:
            pipe.execute_command("EVALSHA", _sha(source), len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)


_batches: dict[int, ScriptBatch] = {}


@functools.cache
def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


class StoreOutcome(enum.IntEnum):
    """What a store script did with a chunk or an evaluation result (its first return value)."""

    STORED = 1
    DUPLICATE = 0  # its id was stored before: acked again, nothing counted twice
    NOT_RUNNING = -1  # the campaign is neither running nor paused
    UNKNOWN_MODEL = -2  # it claims a model version that does not exist yet
    STALE_MODEL = -3  # its model is older than the campaign's policy lag allows
    RATE_LIMITED = -4  # the machine passed its chunks-per-second limit (refused frames count too)
    REVOKED = -5  # the machine's token was revoked
    FULL = -6  # the stream holds ``maxlen`` chunks (or max bytes), read or not: refused, never trimmed
    NOT_REQUESTED = -7  # an evaluation result for an episode nobody handed to this machine

    @property
    def acked(self) -> bool:
        return self in (StoreOutcome.STORED, StoreOutcome.DUPLICATE)


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


# A learner writes its heartbeat about every second (trainer.learner); one this many seconds old is
# not live, and the relay holds clients no longer than 2 s an ack (portal.relay.services.backoff_ms).
LEARNER_LIVE_S = 10

# Store one validated chunk, exactly once, and count it: all or nothing, in one round trip. Returns
# {outcome, model_version, backlog, flagged[, evaluate, high_water, url, sha256, drain]} with the
# outcomes of StoreOutcome. ``flagged`` is 1 when staff-visible bad-data flagging throttles this
# machine. A stored chunk that ends an episode also records a boss fight (ARGV[14]: its entry for the
# outcomes list, '' when not a boss fight; it starts with '1' when won, see CampaignKeys.outcomes) and,
# while the learner asks for evaluation episodes (KEYS[14]), hands one to this client, recording it
# for this machine (KEYS[17]: its result is taken only against such a hand-out): the 5th result
# is then the version to evaluate (0: none), and the 7th and 8th its model's url and sha256 (so the
# ack carries the request without another round trip; see portal.relay.evaluation). Chunk ids are
# the machine's own (KEYS[1]; KEYS[18] is the id as relays before that stored it). The 6th is the
# backlog (in chunks) past which the learner wants clients to slow down (0: the server's default), and
# the 9th the live learner's drain rate in chunks per 1,000 s of its work (0: none live, or not
# measured yet; live: its heartbeat at most ARGV[19] seconds old).
# KEYS and ARGV: StoreChunkCall below names each one.
STORE_CHUNK_LUA = """
local mv = tonumber(redis.call('HGET', KEYS[9], 'version') or '0')
local learner = redis.call('HMGET', KEYS[16], 'high_water', 'heartbeat', 'drain_chunks_per_s')
local hw = tonumber(learner[1] or '0')
-- The live learner's drain rate (chunks a second of its work, in thousandths; 0 without one): a
-- learner is live while its heartbeat is at most ARGV[19] seconds old. Only then may the relay hold
-- clients past 2 s an ack (a campaign without one keeps taking chunks for the next, see backoff_ms).
local drain = 0
if tonumber(ARGV[6]) - tonumber(learner[2] or '0') <= tonumber(ARGV[19]) then
  drain = math.floor(1000 * (tonumber(learner[3] or '0') or 0))
end
if redis.call('SISMEMBER', KEYS[12], ARGV[2]) == 1 then return {-5, mv, 0, 0} end
local flagged = redis.call('HEXISTS', KEYS[11], ARGV[2])
local status = redis.call('GET', KEYS[8])
-- Chunks made before a pause are still good experience: keep them for the resumed learner.
if status ~= 'running' and status ~= 'paused' then return {-1, mv, 0, flagged} end
local limit = tonumber(ARGV[11])
if flagged == 1 then limit = tonumber(ARGV[12]) end
local sent = redis.call('INCR', KEYS[10])
if sent == 1 then redis.call('EXPIRE', KEYS[10], 2) end
if sent > limit then return {-4, mv, 0, flagged} end
local version = tonumber(ARGV[9])
if version > mv then return {-2, mv, 0, flagged} end
local lag = tonumber(ARGV[13])
if lag > 0 and version < mv - lag then return {-3, mv, 0, flagged} end
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[2])
-- The stream holds what the learner has not read yet (the backlog) and what it read but no checkpoint
-- covers yet (pending in its group, ARGV[17]; see trainer/stream.py): the backlog is the difference.
local stored = redis.call('XLEN', KEYS[2])
local backlog = stored
if stored > 0 then
  local pending = redis.pcall('XPENDING', KEYS[2], ARGV[17])
  if type(pending) == 'table' and pending.err == nil then backlog = stored - pending[1] end
end
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[18]) == 1 then
  return {0, mv, backlog, flagged, 0, hw, false, false, drain}
end
-- At the hard caps (entries, bytes: held entries count, they are in Redis too), refuse (the client
-- keeps the chunk) before the id is marked as stored; acked entries are never trimmed. MEMORY USAGE
-- samples a few of the stream's nodes: O(1).
if stored >= tonumber(ARGV[7]) then return {-6, mv, backlog, flagged} end
if stored > 0 and (redis.call('MEMORY', 'USAGE', KEYS[2], 'SAMPLES', 5) or 0) + #ARGV[1] > tonumber(ARGV[15]) then
  return {-6, mv, backlog, flagged}
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[8])
redis.call('XADD', KEYS[2], '*', 'c', ARGV[1], 'm', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'samples', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'chunks', 1)
redis.call('HINCRBY', KEYS[6], ARGV[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[3], 'episodes', 1)
  redis.call('LPUSH', KEYS[4], ARGV[5])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[10]) - 1)
  redis.call('HINCRBY', KEYS[7], ARGV[2], 1)
  if ARGV[14] ~= '' then
    redis.call('HINCRBY', KEYS[3], 'fights', 1)
    redis.call('LPUSH', KEYS[15], ARGV[14])
    redis.call('LTRIM', KEYS[15], 0, tonumber(ARGV[10]) - 1)
    if string.sub(ARGV[14], 1, 1) == '1' then
      redis.call('HINCRBY', KEYS[3], 'wins', 1)
      -- The boards credit a win only if its model was current not long ago (ARGV[18] versions): a
      -- fight played offline with a model the server has since replaced earns none.
      if version >= mv - tonumber(ARGV[18]) then redis.call('HINCRBY', KEYS[13], ARGV[2], 1) end
    end
  end
  local want = tonumber(redis.call('HGET', KEYS[14], 'episodes') or '0')
  if want > 0 and tonumber(redis.call('HGET', KEYS[14], 'assigned') or '0') < want then
    redis.call('HINCRBY', KEYS[14], 'assigned', 1)
    local ask = redis.call('HMGET', KEYS[14], 'version', 'url', 'sha256')
    -- Recorded per machine: an evaluation result is taken only for an episode handed to its machine.
    redis.call('HINCRBY', KEYS[17], ask[1] .. ':' .. ARGV[2], 1)
    redis.call('EXPIRE', KEYS[17], ARGV[16])
    return {1, mv, backlog + 1, flagged, tonumber(ask[1]), hw, ask[2], ask[3], drain}
  end
end
return {1, mv, backlog + 1, flagged, 0, hw, false, false, drain}
"""


@dataclass(frozen=True)
class StoreChunkCall:
    """One call of STORE_CHUNK_LUA: what it reads, by name; ``keys()`` and ``args()`` in its order."""

    keys: CampaignKeys
    chunk_id: str
    machine_id: int
    frame: bytes  # the validated chunk, re-encoded (never the frame as it came): the stream keeps these bytes
    steps: int
    episode_done: bool
    episode_return: float
    now: int  # unix seconds: the rate window and the machine's last-seen time
    maxlen: int  # the stream's hard cap in entries (SOULSAI_STREAM_MAXLEN)
    max_bytes: int  # and in bytes (SOULSAI_STREAM_MAX_BYTES)
    model_version: int
    rate_limit: int  # chunks per second per machine
    flagged_rate_limit: int  # the same, for a flagged machine
    max_policy_lag: int  # 0: any published version is accepted
    outcome_entry: str  # the fight for the outcomes list ('' when not a boss fight)
    dedup_ttl: int = DEDUP_TTL_SECONDS
    returns_kept: int = RETURNS_KEPT
    handed_ttl: int = EVAL_HANDED_TTL_S
    board_win_max_lag: int = BOARD_WIN_MAX_LAG
    learner_live_s: int = LEARNER_LIVE_S

    def key_list(self) -> list[str]:
        k = self.keys
        return [
            k.dedup(self.machine_id, self.chunk_id),  # 1: in the machine's own id space
            k.stream,  # 2
            k.stats,  # 3
            k.returns,  # 4
            k.clients,  # 5
            k.machine_samples,  # 6
            k.machine_episodes,  # 7
            k.status,  # 8
            k.model,  # 9
            k.rate(self.machine_id, self.now),  # 10: this second's rate counter
            k.flagged,  # 11
            k.revoked,  # 12
            k.machine_wins,  # 13
            k.eval_request,  # 14
            k.outcomes,  # 15
            k.learner,  # 16: the learner's stats hash (the backlog it wants, "high_water")
            k.eval_handed,  # 17: evaluation episodes handed out per version and machine
            k.legacy_dedup(self.chunk_id),  # 18: the id as older relays stored it (exactly-once across the upgrade)
        ]

    def args(self) -> list[Any]:
        return [
            self.frame,  # 1
            self.machine_id,  # 2
            self.steps,  # 3
            1 if self.episode_done else 0,  # 4
            repr(float(self.episode_return)),  # 5
            self.now,  # 6
            self.maxlen,  # 7
            self.dedup_ttl,  # 8
            self.model_version,  # 9
            self.returns_kept,  # 10
            self.rate_limit,  # 11
            self.flagged_rate_limit,  # 12
            self.max_policy_lag,  # 13
            self.outcome_entry,  # 14
            self.max_bytes,  # 15
            self.handed_ttl,  # 16
            self.keys.group,  # 17: the learner's consumer group (its pending entries are not backlog)
            self.board_win_max_lag,  # 18
            self.learner_live_s,  # 19: a learner whose heartbeat is older is not live
        ]


# Count one chunk refused for good, and flag a machine that keeps sending bad data. Only called on
# the (rare) reject path. Returns {bad rejections in the current window, flagged}. KEYS and ARGV:
# RejectCall below.
REJECT_LUA = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':' .. ARGV[2], 1)
-- A refused frame costs the relay as much as a stored one: it counts toward the rate limit too.
if redis.call('INCR', KEYS[5]) == 1 then redis.call('EXPIRE', KEYS[5], 2) end
local bad = 0
if ARGV[3] == '1' then
  bad = redis.call('INCR', KEYS[3])
  if bad == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
  if bad >= tonumber(ARGV[5]) then redis.call('HSETNX', KEYS[4], ARGV[1], ARGV[6]) end
end
return {bad, redis.call('HEXISTS', KEYS[4], ARGV[1])}
"""


@dataclass(frozen=True)
class RejectCall:
    """One call of REJECT_LUA: what it reads, by name; ``keys()`` and ``args()`` in its order."""

    keys: CampaignKeys
    machine_id: int
    code: str  # the reject's reason code
    counts: bool  # the refusal counts toward flagging the machine
    window_s: int  # the flagging window (SOULSAI_FLAG_WINDOW_S)
    threshold: int  # bad rejections in one window that flag the machine (SOULSAI_FLAG_REJECTIONS)
    now: int  # unix seconds

    def key_list(self) -> list[str]:
        k = self.keys
        return [
            k.machine_rejections,  # 1
            k.rejection_codes,  # 2
            k.bad_window(self.machine_id),  # 3
            k.flagged,  # 4
            k.rate(self.machine_id, self.now),  # 5: this second's rate counter
        ]

    def args(self) -> list[Any]:
        return [self.machine_id, self.code, 1 if self.counts else 0, self.window_s, self.threshold, self.now]
