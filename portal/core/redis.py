"""The portal's Redis connections (the key layout is ``trainer.keys``, shared with the learner)."""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_sync_client: redis.Redis | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def get_redis() -> redis.Redis:
    """The process's synchronous client (thread-safe: redis-py pools connections)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
    return _sync_client


def get_async_redis() -> aioredis.Redis:
    """An asyncio client bound to the running event loop (one per loop: connections are loop-bound)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
        _async_clients[loop] = client
    return client


# One PUBLISH per notice reaches every ASGI process (portal/relay/fanout.py).
NOTICES_CHANNEL = "soulsai:notices"


RETURNS_KEPT = 100
DEDUP_TTL_SECONDS = 7 * 24 * 3600

# Outcomes of STORE_CHUNK_LUA (portal.relay.services names them).
OUT_STORED, OUT_DUPLICATE, OUT_NOT_RUNNING, OUT_UNKNOWN_MODEL, OUT_STALE_MODEL, OUT_RATE_LIMITED, OUT_REVOKED = (
    1, 0, -1, -2, -3, -4, -5,
)
OUT_FULL = -6

# Store one validated chunk, exactly once, and count it: all or nothing, in one round trip. Every
# check that needs Redis state (revocation, status, rate, model version) is made here, so the hot
# path stays one round trip. Returns {outcome, model_version, backlog, flagged} with the outcomes
# above: -5 the token was revoked, -1 the campaign is neither running nor paused, -4 the machine
# passed its chunks-per-second limit (refused frames count too, see REJECT_LUA), -2 the chunk claims
# a model version that does not exist yet, -3 its model is older than the campaign's policy lag
# allows, -6 the stream holds ``maxlen`` chunks the learner has not taken (it is refused, never
# trimmed: an acked chunk is never dropped; the client keeps it and retries). ``flagged`` is 1 when
# staff-visible bad-data flagging throttles this machine.
# A stored chunk that ends an episode also records a boss fight (ARGV 14: its entry for the outcomes
# list, '' when not a boss fight; it starts with '1' when won, see CampaignKeys.outcomes) and, while
# the learner asks for evaluation episodes (KEYS 14), hands one to this client: the 5th result is
# then the version to evaluate (0: none), and the 7th and 8th its model's url and sha256 (so the ack
# carries the request without another round trip). The 6th is the backlog (in chunks) past which the
# learner wants clients to slow down (0: the server's default).
# KEYS: 1 dedup, 2 stream, 3 stats, 4 returns, 5 clients, 6 machine_samples, 7 machine_episodes,
#       8 status, 9 model, 10 rate (this second), 11 flagged, 12 revoked, 13 machine_wins,
#       14 eval_request, 15 outcomes, 16 learner (its stats hash: the backlog it wants, "high_water")
# ARGV: 1 frame, 2 machine id, 3 steps, 4 episode done, 5 episode return, 6 now, 7 maxlen, 8 dedup ttl,
#       9 model version, 10 returns kept, 11 chunks/s limit, 12 chunks/s limit when flagged,
#       13 max policy lag (0: none), 14 outcome entry
STORE_CHUNK_LUA = """
local mv = tonumber(redis.call('HGET', KEYS[9], 'version') or '0')
local hw = tonumber(redis.call('HGET', KEYS[16], 'high_water') or '0')
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
local backlog = redis.call('XLEN', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, mv, backlog, flagged, 0, hw} end
-- At the hard cap, refuse (the client keeps the chunk) before the id is marked as stored.
if backlog >= tonumber(ARGV[7]) then return {-6, mv, backlog, flagged} end
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
      redis.call('HINCRBY', KEYS[13], ARGV[2], 1)
    end
  end
  local want = tonumber(redis.call('HGET', KEYS[14], 'episodes') or '0')
  if want > 0 and tonumber(redis.call('HGET', KEYS[14], 'assigned') or '0') < want then
    redis.call('HINCRBY', KEYS[14], 'assigned', 1)
    local ask = redis.call('HMGET', KEYS[14], 'version', 'url', 'sha256')
    return {1, mv, backlog + 1, flagged, tonumber(ask[1]), hw, ask[2], ask[3]}
  end
end
return {1, mv, backlog + 1, flagged, 0, hw}
"""

# Record one greedy evaluation episode, exactly once (the client resends until acked).
# KEYS: 1 dedup, 2 evals (this version), 3 stats, 4 model
# ARGV: 1 return, 2 length, 3 win ('1', '0' or ''), 4 version, 5 dedup ttl, 6 boss HP left,
#       7 player HP left (fractions; both '' when the fight reported none)
# Returns 1 stored, 0 duplicate, -2 unknown model version.
STORE_EVAL_LUA = """
local mv = tonumber(redis.call('HGET', KEYS[4], 'version') or '0')
if tonumber(ARGV[4]) > mv then return -2 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'episodes', 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'return_sum', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'steps', ARGV[2])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[2], 'wins', 1) end
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[2], 'fights', 1) end
-- Counted apart from fights: a client may report a win without HP, and means divide by hp_fights.
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[2], 'hp_fights', 1)
  redis.call('HINCRBYFLOAT', KEYS[2], 'boss_hp_sum', ARGV[6])
  redis.call('HINCRBYFLOAT', KEYS[2], 'player_hp_sum', ARGV[7])
end
redis.call('HINCRBY', KEYS[3], 'eval_episodes', 1)
redis.call('HINCRBY', KEYS[3], 'eval_steps', ARGV[2])
return 1
"""

# Count one chunk refused for good, and flag a machine that keeps sending bad data. Only called on
# the (rare) reject path. Returns {bad rejections in the current window, flagged}.
# KEYS: 1 machine_rejections, 2 rejection_codes, 3 bad window, 4 flagged, 5 rate (this second)
# ARGV: 1 machine id, 2 reason code, 3 counts toward flagging (1/0), 4 window seconds,
#       5 threshold, 6 now
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
