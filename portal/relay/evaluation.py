"""Evaluation episodes, the relay's side: handing them out in acks and storing their results.

The relay's share of the evaluation round trip (the whole of it is told in ``trainer/evaluation.py``,
the server-side owner: when to ask, the request, the roll-up of results into a checkpoint's figures):

- **Hand-out**: the chunk store script (``portal.relay.store.STORE_CHUNK_LUA``, one round trip with
  the chunk) reads the learner's request ``{c<id>}:eval_request`` and, while ``assigned < episodes``,
  counts one more in ``assigned`` and returns its ``version``, ``url`` and ``sha256``; ``ask_notice``
  turns them into the ack's ``evaluate`` field.
  The script also counts the hand-out per machine in ``{c<id>}:eval_handed`` ("<version>:<machine>").
  When a machine's connection closes, ``eval_release`` gives back the episodes of the current request
  handed to it and not yet played, so that they are handed out again.
- **Result**: ``eval_store`` records an ``eval`` message exactly once (the client resends it until
  acked; ids are per machine, apart from chunk ids) into ``{c<id>}:eval:<version>`` and counts
  ``eval_episodes`` and ``eval_steps`` in the campaign's stats, after the gate chunks pass (revoked
  token, campaign status, rate limit, model version) and only for an episode handed to that machine
  (each result consumes one hand-out; anything else is refused with ``not_requested`` and writes
  nothing). The consumer validated it first against the environment's bounds
  (``client_app.protocol.bounds``: length, return, a win only in boss fights).

- **Replay**: a recorded result that carries a trace (validated with it:
  ``client_app.protocol.decode_trace``) is kept as a replay through the model files' storage
  (``replay_keep``, ``portal.replays.services``) and announced to the campaign's live pages. A replay
  that cannot be stored is logged: the result is recorded and acked all the same.

Shared with ``trainer/evaluation.py``: the field names of both hashes (its ``REQUEST_FIELDS`` and
``RESULT_FIELDS``), which the scripts here read and write by name. Shared with the client
(``client_app/evaluation.py``, which plays the episodes): the ack's ``evaluate`` field and the
``eval`` message, both defined in ``client_app.protocol`` (``Ack``, ``ModelNotice``, ``EvalResult``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from channels.db import database_sync_to_async

from client_app.protocol import EvalResult, ModelNotice
from portal.relay.store import DEDUP_TTL_SECONDS, StoreOutcome, hp_left, run_script, win_flag
from trainer.keys import CampaignKeys

log = logging.getLogger(__name__)

# Record one greedy evaluation episode, exactly once (the client resends until acked), through the
# same gate as a chunk: revoked token, campaign status, the machine's rate limit (shared with its
# chunks), the model version, and then: only as many results per version as episodes were handed to
# this machine (KEYS[9], counted by the chunk script's hand-out), each consuming one. A refusal writes
# nothing but the one-second rate counter. Returns {StoreOutcome, flagged}. KEYS and ARGV:
# StoreEvalCall below.
STORE_EVAL_LUA = """
local mv = tonumber(redis.call('HGET', KEYS[4], 'version') or '0')
if redis.call('SISMEMBER', KEYS[5], ARGV[8]) == 1 then return {-5, 0} end
local flagged = redis.call('HEXISTS', KEYS[8], ARGV[8])
local status = redis.call('GET', KEYS[6])
if status ~= 'running' and status ~= 'paused' then return {-1, flagged} end
local limit = tonumber(ARGV[9])
if flagged == 1 then limit = tonumber(ARGV[10]) end
local sent = redis.call('INCR', KEYS[7])
if sent == 1 then redis.call('EXPIRE', KEYS[7], 2) end
if sent > limit then return {-4, flagged} end
if tonumber(ARGV[4]) > mv then return {-2, flagged} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, flagged} end
local handed = ARGV[4] .. ':' .. ARGV[8]
local left = tonumber(redis.call('HGET', KEYS[9], handed) or '0')
if left < 1 then return {-7, flagged} end
if left == 1 then redis.call('HDEL', KEYS[9], handed) else redis.call('HINCRBY', KEYS[9], handed, -1) end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'episodes', 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'return_sum', ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[2], 'return_sq_sum', ARGV[11])
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
return {1, flagged}
"""


@dataclass(frozen=True)
class StoreEvalCall:
    """One call of STORE_EVAL_LUA: what it reads, by name; ``key_list()`` and ``args()`` in its order."""

    keys: CampaignKeys
    result: EvalResult
    machine_id: int
    now: int  # unix seconds: the rate window
    rate_limit: int  # frames per second per machine (chunks and results together)
    flagged_rate_limit: int
    dedup_ttl: int = DEDUP_TTL_SECONDS

    def key_list(self) -> list[str]:
        k = self.keys
        return [
            k.eval_dedup(self.machine_id, self.result.id),  # 1: its own id space, apart from chunks'
            k.evals(self.result.model_version),  # 2: this version's result hash
            k.stats,  # 3
            k.model,  # 4
            k.revoked,  # 5
            k.status,  # 6
            k.rate(self.machine_id, self.now),  # 7: this second's rate counter (shared with chunks)
            k.flagged,  # 8
            k.eval_handed,  # 9: episodes handed out per "<version>:<machine>"
        ]

    def args(self) -> list[Any]:
        boss_hp, player_hp = hp_left(self.result.outcome)
        return [
            repr(self.result.episode_return),  # 1
            self.result.episode_length,  # 2
            win_flag(self.result.outcome),  # 3: '1' won, '0' lost, '' not a boss fight
            self.result.model_version,  # 4
            self.dedup_ttl,  # 5
            boss_hp,  # 6: fractions; both '' when the fight reported none
            player_hp,  # 7
            self.machine_id,  # 8
            self.rate_limit,  # 9
            self.flagged_rate_limit,  # 10
            repr(self.result.episode_return**2),  # 11: the returns' spread, for the roll-out gate
        ]


async def eval_store(
    *, client: aioredis.Redis, campaign_id: int, machine_id: int, result: EvalResult,
    rate_limit: int, flagged_rate_limit: int,
) -> tuple[StoreOutcome, bool]:
    """Record one evaluation episode exactly once, if it passes the gate: (outcome, machine flagged)."""
    call = StoreEvalCall(
        keys=CampaignKeys(campaign_id), result=result, machine_id=machine_id, now=int(time.time()),
        rate_limit=rate_limit, flagged_rate_limit=flagged_rate_limit,
    )
    outcome, flagged = await run_script(client, STORE_EVAL_LUA, keys=call.key_list(), args=call.args())
    return StoreOutcome(int(outcome)), bool(flagged)


# Give back the evaluation episodes of the current request that were handed to a machine whose
# connection closed before it sent their results: the request counts them as unassigned again, so the
# next episode ends hand them to whoever plays on. Without it, a client that quit or crashed
# mid-evaluation left its episodes unplayed: the checkpoint's evaluation never completed and the
# learner's next one waited out its timeout (trainer.evaluation.TIMEOUT_S). A machine that comes back
# and sends such a result after all is refused (not_requested): the episode was handed out anew. A
# machine with two connections open loses the other one's hand-outs with it, which costs at most those
# fights. KEYS: the request, the hand-out counts; ARGV: the machine. Returns how many were given back.
RELEASE_EVAL_LUA = """
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return 0 end
local handed = version .. ':' .. ARGV[1]
local n = tonumber(redis.call('HGET', KEYS[2], handed) or '0')
if n < 1 then return 0 end
redis.call('HDEL', KEYS[2], handed)
local assigned = tonumber(redis.call('HGET', KEYS[1], 'assigned') or '0')
redis.call('HSET', KEYS[1], 'assigned', math.max(0, assigned - n))
return n
"""


async def eval_release(*, client: aioredis.Redis, campaign_id: int, machine_id: int) -> int:
    """Give back the current request's episodes handed to ``machine_id`` and not yet played (its
    connection closed); returns how many."""
    keys = CampaignKeys(campaign_id)
    return int(
        await run_script(client, RELEASE_EVAL_LUA, keys=[keys.eval_request, keys.eval_handed], args=[str(machine_id)])
    )


def ask_notice(version: int, url: str, sha256: str) -> ModelNotice | None:
    """The ack's ``evaluate`` field from what the store script handed out, or None (nothing asked)."""
    if not (version and url and sha256):
        return None
    return ModelNotice(version=version, url=url, sha256=sha256)


async def replay_keep(*, campaign: Any, result: EvalResult) -> None:
    """Keep a recorded result's trace as a replay and tell the campaign's live pages; never raises
    (the result is recorded already: a storage hiccup costs the replay, not the evaluation)."""
    from portal.replays.services import replay_announce, replay_save  # the ORM, only where needed

    try:
        replay = await database_sync_to_async(replay_save)(campaign=campaign, result=result)
    except Exception:
        log.exception("replay of evaluation %s (campaign %s) not stored", result.id, campaign.pk)
        return
    await replay_announce(replay=replay)
