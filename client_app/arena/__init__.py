"""``soulsai/IudexArena-v0``: a small Iudex Gundyr fight that stands in for ``SoulsGymIudex-v0``.

For developers, CI and visitors without Dark Souls III. It has the real env's observation and action
spaces (``client_app.iudex``), its action semantics (8 walks, 8 rolls, light and heavy attack, parry,
do nothing; actions masked by SoulsGym's animation timings and dropped when not allowed), its reward
(``iudex.compute_reward``) and its 3000-step cut, and plays a simple but real fight:

- Iudex walks up to the player, turns to face them and attacks with moves named after SoulsGym's
  Iudex animations, lasting as long as they did in the recorded game. Each attack has hit windows
  (time range, reach, arc, damage, the stagger it causes), a wind-up while it tracks the player and
  a recovery at the end, in which Iudex is open.
- The player's light attacks (combo 1-2-3), heavy attack, parry and riposte, rolls with
  invulnerability frames and stamina (rolls, attacks and parries cost it; walking and standing
  regain it) follow the game's animation names and timings.
- Parrying a parryable hit staggers Iudex (DamageParryEnemy1): a light attack close by then
  ripostes (player ThrowAtk, boss ThrowDef) for heavy damage. Enough hits break his poise (SABreak).
- The episode ends when either HP reaches 0 (±0.1 reward) or after 3000 steps (truncated).

All randomness (Iudex's choices) comes from the seed given to ``reset``: same seed and actions, same
fight. Unpaced it runs many thousand steps a second (``bench/arena.py``); ``pace=True`` sleeps so that a
step lasts 0.1 s / ``game_speed`` of wall time, like the real game. The rules are in docs/soulsgym.md.
"""

from client_app.arena.env import IudexArena
from client_app.arena.rules import ATTACKS, Attack, Hit
from client_app.arena.scripted import scripted_action

__all__ = ["ATTACKS", "Attack", "Hit", "IudexArena", "scripted_action"]
