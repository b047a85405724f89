"""Evaluation episodes, the relay's side: handing them out in acks and storing their results.

The relay's share of the evaluation round trip (the whole of it is told in ``trainer/evaluation.py``,
the server-side owner: when to ask, the request, the roll-up of results into a checkpoint's figures):

- **Hand-out**: the chunk store script (``portal.relay.store.STORE_CHUNK_LUA``, one round trip with
  the chunk) reads the learner's request ``{c<id>}:eval_request`` and, while ``assigned < episodes``,
  counts one more in ``assigned`` and returns its ``version``, ``url`` and ``sha256``; ``ask_notice``
  turns them into the ack's ``evaluate`` field.
- **Result**: ``eval_store`` records an ``eval`` message exactly once (the client resends it until
  acked) into ``{c<id>}:eval:<version>`` and counts ``eval_episodes`` and ``eval_steps`` in the
  campaign's stats.

Shared with ``trainer/evaluation.py``: the field names of both hashes (its ``REQUEST_FIELDS`` and
``RESULT_FIELDS``), which the scripts here read and write by name. Shared with the client
(``client_app/evaluation.py``, which plays the episodes): the ack's ``evaluate`` field and the
``eval`` message, both defined in ``client_app.protocol`` (``Ack``, ``ModelNotice``, ``EvalResult``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from client_app.protocol import EvalResult, ModelNotice
from portal.relay.store import DEDUP_TTL_SECONDS, StoreOutcome, hp_left, run_script, win_flag
from trainer.keys import CampaignKeys

# Record one greedy evaluation episode, exactly once (the client resends until acked). Returns
# StoreOutcome.STORED, DUPLICATE or UNKNOWN_MODEL. KEYS and ARGV: StoreEvalCall below.
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


@dataclass(frozen=True)
class StoreEvalCall:
    """One call of STORE_EVAL_LUA: what it reads, by name; ``key_list()`` and ``args()`` in its order."""

    keys: CampaignKeys
    result: EvalResult
    dedup_ttl: int = DEDUP_TTL_SECONDS

    def key_list(self) -> list[str]:
        k = self.keys
        return [
            k.dedup("eval:" + self.result.id),  # 1: its own id space, apart from chunks'
            k.evals(self.result.model_version),  # 2: this version's result hash
            k.stats,  # 3
            k.model,  # 4
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
        ]


async def eval_store(*, client: aioredis.Redis, campaign_id: int, result: EvalResult) -> StoreOutcome:
    """Record one evaluation episode exactly once: STORED, DUPLICATE, or UNKNOWN_MODEL (no such version)."""
    call = StoreEvalCall(keys=CampaignKeys(campaign_id), result=result)
    return StoreOutcome(int(await run_script(client, STORE_EVAL_LUA, keys=call.key_list(), args=call.args())))


def ask_notice(version: int, url: str, sha256: str) -> ModelNotice | None:
    """The ack's ``evaluate`` field from what the store script handed out, or None (nothing asked)."""
    if not (version and url and sha256):
        return None
    return ModelNotice(version=version, url=url, sha256=sha256)
