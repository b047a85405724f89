"""The arena env, ``soulsai/IudexArena-v0``: the fight loop on top of the rules in ``rules``."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from client_app import iudex as I
from client_app.arena import rules as R
from client_app.arena.rules import (
    ANIM_DT,
    ARENA_RADIUS,
    ATTACK_FACING,
    ATTACKING,
    BOSS_DAMAGE,
    BOSS_RADIUS,
    BOSS_STRAFE_STEP,
    BOSS_TURN,
    BOSS_WALK_STEP,
    DT,
    HEAVY,
    LIGHT,
    NEXT_LIGHT,
    PARRY_WINDOW,
    PLAYER_ANIM_END,
    PLAYER_INIT_POSES,
    POISE_BREAK,
    RIPOSTE,
    ROLL_IFRAMES,
    ROLL_MOVE_S,
    ROLL_STEP,
    ROLLS,
    SP_REGEN,
    STAGGER_ANIMS,
    STAGGER_S,
    STEP_LIGHT,
    WALK_STEP,
    Attack,
    Hit,
    floor_z,
    heading,
    wrap,
)


class IudexArena(gym.Env):
    """The arena fight; see the module docstring. Make it with ``gymnasium.make(ARENA_ID)``.

    Keyword arguments: ``phase`` (1 or 2: the phase reported; phase 2 hits 20% harder),
    ``init_pose_randomization`` (start from SoulsGym's random player poses), ``pace`` and
    ``game_speed`` (emulate the real game's 0.1 s steps at that speed), as SoulsGymIudex-v0 takes
    ``game_speed``, ``phase`` and ``init_pose_randomization``; and the arena's own ``boss_damage``,
    the share of the attack table's damage Iudex deals (``rules.BOSS_DAMAGE``, see there; 1.0 is
    the table at full strength). ``clock`` and ``sleep`` are what the pace reads and waits on
    (``time.monotonic`` and ``time.sleep``).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        phase: int = 1,
        init_pose_randomization: bool = False,
        pace: bool = False,
        game_speed: float = 1.0,
        boss_damage: float = BOSS_DAMAGE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if phase not in (1, 2):
            raise ValueError(f"phase must be 1 or 2, got {phase!r}")
        if not game_speed > 0:
            raise ValueError(f"game_speed must be positive, got {game_speed!r}")
        if (
            isinstance(boss_damage, bool)
            or not isinstance(boss_damage, (int, float))
            or not 0 < boss_damage <= 2
        ):
            raise ValueError(f"boss_damage must be a number in (0, 2], got {boss_damage!r}")
        self.observation_space = I.observation_space()
        self.action_space = I.action_space()
        self.phase = phase
        self.init_pose_randomization = bool(init_pose_randomization)
        self.pace = bool(pace)
        self.game_speed = float(game_speed)
        self.boss_damage = float(boss_damage)
        # The pace reads and waits on these; a test passes a fake clock to check the pace without a stopwatch.
        self._clock, self._sleep = clock, sleep
        self._damage_scale = self.boss_damage * (1.0 if phase == 1 else 1.2)
        self._moveset = R.ATTACKS if phase == 1 else R.PHASE2_ATTACKS
        self._rng = random.Random(0)
        self._next_step_at = 0.0
        self._done = True

    # -- gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._rng = random.Random(int(self.np_random.integers(2**62)))
        pose = self._rng.choice(PLAYER_INIT_POSES) if self.init_pose_randomization else I.PLAYER_INIT_POSE
        self.px, self.py, self.pyaw = pose[0], pose[1], pose[3]
        self.p_hp, self.p_sp = float(I.PLAYER_MAX_HP), float(I.PLAYER_MAX_SP)
        self.p_anim, self.p_t = "Idle", 0.0
        self.p_due: tuple[float, float] | None = None
        self.p_roll_dir = 0.0
        self.p_hit_done = False  # the current attack animation already dealt (or missed) its hit
        self.bx, self.by, self.byaw = I.BOSS_INIT_POSE[0], I.BOSS_INIT_POSE[1], I.BOSS_INIT_POSE[3]
        self.b_hp = float(I.BOSS_MAX_HP)
        self.b_anim, self.b_t = "IdleBattle", 0.0
        self.b_attack: Attack | None = None
        self.b_hits_done: set[int] = set()
        self.b_poise = 0.0
        self.b_lunge = 0.0
        self.b_sweep = 0.0
        self.b_shift = 0.0
        self.p_walk = -1  # the walk action last taken (for the run stops)
        self.p_walk_steps = 0  # steps walked in a row
        self.p_prev = "Idle"  # the player's animation before the current one
        self.p_grabbed = False  # held by the grab, then getting up: lock-on is lost
        # What 699 recorded steps cannot pin down is drawn per fight within stated ranges (rules.py).
        rng = self._rng
        self.chain_p = rng.uniform(*(R.CHAIN_P if self.phase == 1 else R.CHAIN_P2))
        self.cut_p = rng.uniform(*R.CUT_P)
        self.pause_median = rng.uniform(*R.PAUSE_MEDIAN)
        self.fast_turn = rng.uniform(*R.FAST_TURN) * ANIM_DT
        self.slow_turn = rng.uniform(*R.SLOW_TURN) * ANIM_DT
        self.tempo = rng.uniform(*R.PHASE2_TEMPO) if self.phase == 2 else 1.0
        self.b_end = 0.0  # when the current attack ends (its full length, or a cut for a chained follow-up)
        self.b_chain = False
        self.b_pause_left = rng.uniform(1.5, 4.0)  # he walks up before his first attack (recorded 3.6 s)
        self.b_move_left = 0.0
        self._done = False
        self._next_step_at = self._clock()
        return self._obs(), {"allowed_actions": self._allowed()}

    def step(self, action: Any):
        if self._done:
            raise RuntimeError("step() called after the fight ended: call reset()")
        action = int(action)
        if not 0 <= action < I.N_ACTIONS:
            raise ValueError(f"action must lie in [0, {I.N_ACTIONS - 1}], got {action}")
        prev = (self.b_hp, self.p_hp, self.px, self.py)
        # Like the game, an action that is not allowed is dropped; the heavy-attack key and doing
        # nothing change nothing (recorded: all 3 allowed heavy presses, every allowed 19).
        if (
            action in self._allowed()
            and action != I.NOOP
            and (action != I.HEAVY_ATTACK or R.HEAVY_ATTACK_WORKS)
        ):
            self._player_act(action)
        else:
            self._release_walk()
        self._boss_decide()
        self._advance()
        reward = self._reward(prev)
        terminated = self.b_hp <= 0.0 or self.p_hp <= 0.0
        info: dict[str, Any] = {"allowed_actions": self._allowed()}
        if terminated:
            self._done = True
            info["outcome"] = {
                "win": self.b_hp <= 0.0,
                "boss_hp": self.b_hp / I.BOSS_MAX_HP,
                "player_hp": self.p_hp / I.PLAYER_MAX_HP,
            }
        if self.pace:
            self._wait_for_pace()
        return self._obs(), reward, terminated, False, info

    # -- the player --------------------------------------------------------------------------------

    def _allowed(self) -> list[int]:
        # From the float32 values the observation shows, so the mask can be recomputed from it.
        return I.allowed_actions(
            self.p_anim, float(np.float32(min(self.p_t, 10.0))), float(np.float32(self.p_sp))
        )

    def _set_player(self, anim: str) -> None:
        self.p_prev = self.p_anim
        self.p_anim, self.p_t, self.p_hit_done = anim, 0.0, False
        self.p_due = None  # (seconds in, SP): a cost the animation takes later (attacks, parry)

    def _pay(self, cost: float) -> None:
        # The game takes the whole cost whenever SP was above 0 (the action needs SP > 0): SP goes negative.
        self.p_sp -= cost

    def _release_walk(self) -> None:
        """A step without a walk: after walking two steps or more the run stops (recorded: all 7 stops
        followed two or more walks and a step without one; none followed a single walk)."""
        if self.p_walk_steps >= 2 and self.p_anim == "Move":
            self._set_player(R.RUN_STOP[R.RUN_STOP_SIDE[self.p_walk]])
        self.p_walk, self.p_walk_steps = -1, 0

    def _get_up(self, action: int) -> None:
        """A knocked-down or released player gets up with a roll (EStepDown): the roll key, once the
        mask allows a roll (recorded: the roll key got him up all 3 times; a light attack did not)."""
        to_boss = heading(self.bx - self.px, self.by - self.py)
        self._set_player("EStepDown")
        self.p_roll_dir = to_boss + ((action % 8) * math.pi / 4 if action < 16 else math.pi)
        self._pay(R.GETUP_SP)

    def _player_act(self, action: int) -> None:
        anim, t = self.p_anim, self.p_t
        to_boss = heading(self.bx - self.px, self.by - self.py)
        if action < 8:  # walk, relative to the locked-on facing: 0 forward, 2 right, 4 back, 6 left
            if anim != "Move":
                self._set_player("Move")
            self.p_walk, self.p_walk_steps = action, self.p_walk_steps + 1
            self._move_player(to_boss + action * math.pi / 4, WALK_STEP)
            return
        self.p_walk, self.p_walk_steps = -1, 0
        if anim not in ATTACKING or t >= R.REGEN_AFTER.get(anim, 99.0):
            # The key lands ACTION_LAG into the step: until then SP still comes back (recorded: a roll from
            # Move costs 14-15, from a roll 16).
            self.p_sp = min(float(I.PLAYER_MAX_SP), self.p_sp + SP_REGEN * R.ACTION_LAG / ANIM_DT)
        self._player_start(action, anim, t, to_boss)
        if self.p_t == 0.0:
            self.p_t = -R.ACTION_LAG  # ... and its animation shows 0.08 s on the next observation (recorded)

    def _player_start(self, action: int, anim: str, t: float, to_boss: float) -> None:
        """A roll, get-up, light attack, heavy attack or parry, taken while allowed."""
        if action < 16 and anim in R.KNOCKDOWN_MAX:
            self._get_up(action)
        elif action < 16:
            # A roll out of a roll (or straight after one) is the chained roll, RollingMediumSelftra.
            chained = anim == "RollingMedium" or (
                self.p_prev in ROLLS and (anim == "Move" or anim.startswith("RunStop")) and t <= 0.25
            )
            self._set_player("RollingMediumSelftra" if chained else "RollingMedium")
            self.p_roll_dir = to_boss + (action - 8) * math.pi / 4
            self._pay(R.ROLL_SP)
        elif action == I.LIGHT_ATTACK:
            if (
                self.b_anim == "DamageParryEnemy1"
                and self.b_t < RIPOSTE["window"]
                and self._distance() < RIPOSTE["reach"]
            ):
                self._set_player("ThrowAtk")
                self._set_boss("ThrowDef")
            elif anim in ROLLS:
                self._set_player("AttackRightLightStep")  # the attack out of a roll
            else:
                self._set_player(NEXT_LIGHT.get(anim, "AttackRightLight1"))
            if self.p_anim == "ThrowAtk":
                self._pay(R.LIGHT_SP)
            else:  # the swing takes its SP as it starts to hurt, not on the key press (recorded)
                step = self.p_anim == "AttackRightLightStep"
                self.p_due = (R.LIGHT_SP_AT, R.STEP_LIGHT_SP if step else R.LIGHT_SP)
        elif action == I.HEAVY_ATTACK:
            if R.HEAVY_ATTACK_WORKS:
                self._set_player("AttackRightHeavy1Sta")
                self._pay(R.HEAVY_SP)
        elif action == I.PARRY:
            self._set_player("ParryLeftStart")
            self.p_due = (R.PARRY_SP_AT, R.PARRY_SP)
        # Doing nothing stops walking; the game still shows Move (recorded: Idle on 5 of 699 steps).

    def _move_player(self, yaw: float, dist: float) -> None:
        self.px -= math.sin(yaw) * dist
        self.py -= math.cos(yaw) * dist
        self.px, self.py = self._keep_apart(self.px, self.py, self.bx, self.by)

    def _player_tick(self, t0: float) -> None:
        t1 = self.p_t
        anim = self.p_anim
        if self.p_due is not None and self.p_due[0] <= t1 + 1e-9:
            self._pay(self.p_due[1])
            self.p_due = None
        if anim in ROLLS and t1 <= ROLL_MOVE_S:
            self._move_player(self.p_roll_dir, ROLL_STEP)
        elif anim == "EStepDown" and t1 <= 0.5:
            self._move_player(self.p_roll_dir, 0.5)
        if anim.startswith("AttackRightLight"):
            self._player_strike(t0, t1, STEP_LIGHT if anim == "AttackRightLightStep" else LIGHT)
        elif anim == "AttackRightHeavy1Sta":
            self._player_strike(t0, t1, HEAVY)
            if t1 >= 1.0 - 1e-9:
                self._set_player("AttackRightHeavy1End")
                self.p_t = t1 - 1.0
        elif anim == "ThrowAtk" and not self.p_hit_done and t1 >= RIPOSTE["at"]:
            self.p_hit_done = True
            self._hurt_boss(RIPOSTE["damage"], 0.0)
        # SP comes back outside actions, and in an action from REGEN_AFTER on: the part of the step past it.
        since = max(0.0, t0, R.REGEN_AFTER.get(anim, 99.0) if anim in ATTACKING else 0.0)
        if t1 > since:
            self.p_sp = min(float(I.PLAYER_MAX_SP), self.p_sp + SP_REGEN * min(1.0, (t1 - since) / ANIM_DT))
        if anim in R.KNOCKDOWN_MAX:
            if t1 >= R.KNOCKDOWN_MAX[anim] - 1e-9:
                self._set_player("Idle")
                self.p_grabbed = False
        elif anim in ROLLS:
            if t1 >= R.ROLL_MAX_S - 1e-9:  # the roll's animation runs on until the next action
                self._set_player("Move")
        elif anim == "AddDamageStartFront":
            if t1 >= R.FLINCH_S[0] - 1e-9:
                self._set_player("AddDamageDefault")
        else:
            end = PLAYER_ANIM_END.get(anim, 0.0)
            if end > 0.0 and t1 >= end - 1e-9 and anim != "Idle":
                self._set_player("Move")  # recorded: an animation's end shows Move, rarely Idle
                if anim == "EStepDown":
                    self.p_grabbed = False  # up again: the lock-on comes back
        if self.p_anim not in ("ThrowAtk", "ThrowDef") and not self.p_grabbed:
            # Locked on: the player turns to face Iudex, except once committed to a swing.
            if not (self.p_anim.startswith("AttackRight") and self.p_t > 0.2):
                self.pyaw = heading(self.bx - self.px, self.by - self.py)

    def _player_strike(self, t0: float, t1: float, move: dict[str, float]) -> None:
        if self.p_hit_done or not t0 < move["at"] <= t1 + 1e-9:
            return
        self.p_hit_done = True
        dx, dy = self.bx - self.px, self.by - self.py
        if math.hypot(dx, dy) > move["reach"] + BOSS_RADIUS * 0.5:
            return
        if abs(wrap(heading(dx, dy) - self.pyaw)) > move["arc"]:
            return
        self._hurt_boss(move["damage"], move["poise"])

    def _hurt_boss(self, damage: float, poise: float) -> None:
        self.b_hp = max(0.0, self.b_hp - damage)
        self.b_poise += poise
        if (
            self.b_poise >= POISE_BREAK
            and self.b_anim not in STAGGER_ANIMS
            and self.b_anim != "ThrowAtk"
            and self.b_hp > 0
        ):
            self.b_poise = 0.0
            self._set_boss("SABreak")

    # -- Iudex -------------------------------------------------------------------------------------

    def _set_boss(self, anim: str, attack: Attack | None = None) -> None:
        if anim != self.b_anim:
            self.b_anim, self.b_t = anim, 0.0
        self.b_attack = attack
        self.b_hits_done = set()

    def _distance(self) -> float:
        return math.hypot(self.px - self.bx, self.py - self.by)

    def _turn_boss(self, rate: float) -> float:
        """Turn Iudex towards the player by at most ``rate``; returns what is left to turn."""
        diff = wrap(heading(self.px - self.bx, self.py - self.by) - self.byaw)
        self.byaw = wrap(self.byaw + max(-rate, min(rate, diff)))
        return diff - max(-rate, min(rate, diff))

    def _start_attack(self) -> None:
        """His next attack, drawn by the recorded mix; whether it chains, and where a chain cuts it."""
        rng, dist = self._rng, self._distance()
        options = [a for a in self._moveset.values() if a.weight > 0 and dist <= a.max_range]
        attack = rng.choices(options, weights=[a.weight for a in options])[0]
        self._set_boss(attack.name, attack)
        self.b_t = 0.0
        full = attack.duration * self.tempo
        self.b_chain = rng.random() < self.chain_p
        self.b_end = full
        if self.b_chain and rng.random() < self.cut_p:
            earliest = min(attack.earliest_cut * self.tempo, 0.9 * full)
            self.b_end = rng.uniform(earliest, 0.9 * full)
        self.b_sweep = rng.choice((-1.0, 1.0)) * rng.uniform(*R.SWEEP_TURN)
        # Each swing lands a little earlier or later (recorded: 3002's big hit at 1.95 s once, 2.68 s once).
        self.b_shift = rng.uniform(*R.HIT_JITTER)
        # The lunge closes the gap (never through the player), a step back opens it.
        self.b_lunge = min(attack.lunge, max(0.0, dist - 1.5)) if attack.lunge > 0 else attack.lunge

    def _pause(self) -> float:
        s = self.pause_median * math.exp(self._rng.gauss(0.0, 0.5))
        return max(R.PAUSE_S[0], min(R.PAUSE_S[1], s))

    def _boss_decide(self) -> None:
        """Start Iudex's next animation when the current one is over or may be interrupted."""
        if self.b_attack is not None:
            if self.b_t < self.b_end - 1e-9:
                return
            if self.b_chain and self.b_anim != "ThrowAtk":  # straight into the next attack, no pause
                self._start_attack()
                return
            self._set_boss("IdleBattle")
            self.b_pause_left = self._pause()
            self.b_move_left = self._rng.uniform(0.2, 1.0)  # he stands a moment after the attack
            return
        if self.b_anim in STAGGER_ANIMS:
            if self.b_t < STAGGER_S[self.b_anim] - 1e-9:
                return
            self._set_boss("IdleBattle")
            self.b_pause_left = self._rng.uniform(0.3, 1.0)
            self.b_move_left = 0.0
            return
        dist = self._distance()
        facing = abs(wrap(heading(self.px - self.bx, self.py - self.by) - self.byaw))
        if self.b_pause_left <= 0.0 and (facing < ATTACK_FACING or self.b_pause_left < -1.0):
            self._start_attack()
            return
        moving = ("IdleBattle", "WalkLeftBattle", "WalkRightBattle", "WalkFrontBattle")
        if self.b_move_left > 0.0 and self.b_anim in moving:
            return
        if self.b_anim.startswith("TurnBattle"):
            return
        rng = self._rng
        if facing > math.pi / 2:
            diff = wrap(heading(self.px - self.bx, self.py - self.by) - self.byaw)
            self._set_boss("TurnBattle_Right90" if diff > 0 else "TurnBattle_Left90")
        elif dist > 5.5 and rng.random() < 0.6:
            self._set_boss("WalkFrontBattle")
            self.b_move_left = rng.uniform(0.5, 1.5)
        else:  # he circles, left or right, or watches (recorded: strafes 10.5% of steps, idles 7%)
            r = rng.random()
            anim = "IdleBattle" if r < 0.3 else ("WalkLeftBattle" if r < 0.65 else "WalkRightBattle")
            self._set_boss(anim)
            self.b_move_left = rng.uniform(0.3, 0.9) if anim == "IdleBattle" else rng.uniform(0.6, 2.2)

    def _boss_tick(self, t0: float) -> None:
        t1 = self.b_t
        attack = self.b_attack
        anim = self.b_anim
        if anim == "ThrowAtk" and attack is not None:  # the grab: he slams the held player down
            if t0 < R.GRAB_DAMAGE_AT <= t1 + 1e-9 and self.p_anim == "ThrowDef":
                self.p_hp = max(0.0, self.p_hp - R.GRAB_DAMAGE * self._damage_scale)
            return
        if attack is not None:
            ts = self.tempo
            windup = attack.windup * ts
            if t0 < windup * attack.track or t0 < attack.hits[-1].start * ts:
                self._turn_boss(self.fast_turn)  # he tracks the player through the wind-up and swings
            elif t0 < attack.recovery_from * ts + 0.3:
                self._turn_boss(self.slow_turn)
            if t0 < windup and self.b_lunge:
                step = self.b_lunge * min(ANIM_DT, windup - t0) / windup
                self.bx -= math.sin(self.byaw) * step
                self.by -= math.cos(self.byaw) * step
                self.bx, self.by = self._keep_apart(self.bx, self.by, self.px, self.py)
            sh = self.b_shift
            if any(h.start * ts + sh - 0.1 <= t0 < h.end * ts + sh for h in attack.hits):
                # The swing itself sweeps him round (recorded bursts of 130-250 °/s around the hits).
                self.byaw = wrap(self.byaw + self.b_sweep * ANIM_DT)
            for i, hit in enumerate(attack.hits):
                if (
                    i not in self.b_hits_done
                    and hit.start * ts + sh <= t1 + 1e-9
                    and t0 < hit.end * ts + sh
                    and self._boss_connects(hit)
                ):
                    self.b_hits_done.add(i)
                    if self.b_attack is not attack:  # parried, or the grab took hold
                        break
            return
        if anim in STAGGER_ANIMS:
            return
        self.b_pause_left -= DT
        self.b_move_left -= DT
        if anim == "WalkFrontBattle":
            self._turn_boss(BOSS_TURN)
            self.bx -= math.sin(self.byaw) * BOSS_WALK_STEP
            self.by -= math.cos(self.byaw) * BOSS_WALK_STEP
            self.bx, self.by = self._keep_apart(self.bx, self.by, self.px, self.py)
        elif anim in ("WalkLeftBattle", "WalkRightBattle"):
            self._turn_boss(BOSS_TURN)
            side = self.byaw + (math.pi / 2 if anim == "WalkRightBattle" else -math.pi / 2)
            self.bx -= math.sin(side) * BOSS_STRAFE_STEP
            self.by -= math.cos(side) * BOSS_STRAFE_STEP
            self.bx, self.by = self._keep_apart(self.bx, self.by, self.px, self.py)
        elif anim.startswith("TurnBattle"):
            left = self._turn_boss(2.0 * DT)
            if abs(left) < 1e-6 or self.b_t >= 0.83:
                self._set_boss("IdleBattle")
                self.b_move_left = 0.0
        else:  # IdleBattle
            self._turn_boss(BOSS_TURN)

    def _boss_connects(self, hit: Hit) -> bool:
        """Whether the hit lands on the player now; applies it. A parry or a miss returns False."""
        dx, dy = self.px - self.bx, self.py - self.by
        dist = math.hypot(dx, dy)
        if dist > hit.reach or abs(wrap(heading(dx, dy) - self.byaw)) > hit.arc:
            return False
        p_anim, p_t = self.p_anim, self.p_t
        if p_anim in ROLLS and ROLL_IFRAMES[0] <= p_t <= ROLL_IFRAMES[1]:
            return False
        if p_anim in ("ThrowAtk", "ThrowDef", "EStepDown") or (p_anim == "DamageExLarge" and p_t > 0.3):
            return False  # riposting, held, getting up or lying: hits pass over
        if (
            hit.parryable
            and p_anim == "ParryLeftStart"
            and PARRY_WINDOW[0] <= p_t <= PARRY_WINDOW[1]
            and abs(wrap(heading(-dx, -dy) - self.pyaw)) < math.radians(60)
        ):
            self._set_boss("DamageParryEnemy1")
            return True
        if hit.stagger == "ThrowDef":  # the grab takes hold: he lifts the player; the damage comes later
            self._set_player("ThrowDef")
            self.p_grabbed = True
            self._set_boss("ThrowAtk", R.ALL_ATTACKS["ThrowAtk"])
            self.b_end, self.b_chain = R.ALL_ATTACKS["ThrowAtk"].duration, False
            return True
        self.p_hp = max(0.0, self.p_hp - hit.damage * self._damage_scale)
        if p_anim in ROLLS and hit.stagger in R.ROLL_FLINCH:
            self._set_player("AddDamageStartFront")  # caught mid-roll by a lighter hit: a flinch
        elif p_anim.startswith("AttackRight") and hit.stagger == "DamageMiddle":
            self._set_player("DamageFling")
        else:
            self._set_player(hit.stagger)
        return True

    # -- time, space, reward -----------------------------------------------------------------------

    def _advance(self) -> None:
        p0, b0 = self.p_t, self.b_t
        # Animation time, rounded so that it does not drift by float errors.
        self.p_t = round(p0 + ANIM_DT, 6)
        self.b_t = round(b0 + ANIM_DT, 6)
        self._player_tick(p0)
        if self.b_hp > 0.0:
            self._boss_tick(b0)

    def _keep_apart(self, x: float, y: float, ox: float, oy: float) -> tuple[float, float]:
        """(x, y) moved back inside the arena's wall and out of the other fighter's body."""
        cx, cy = I.ARENA_CENTER[0], I.ARENA_CENTER[1]
        r = math.hypot(x - cx, y - cy)
        if r > ARENA_RADIUS:
            x, y = cx + (x - cx) * ARENA_RADIUS / r, cy + (y - cy) * ARENA_RADIUS / r
        d = math.hypot(x - ox, y - oy)
        if d < BOSS_RADIUS:
            if d < 1e-6:
                x, d = x + 1e-3, 1e-3
            x, y = ox + (x - ox) * BOSS_RADIUS / d, oy + (y - oy) * BOSS_RADIUS / d
        return x, y

    def _reward(self, prev: tuple[float, float, float, float]) -> float:
        # iudex.compute_reward, inlined: the arena's hot path.
        b_hp, p_hp, px, py = prev
        reward = (b_hp - self.b_hp) / I.BOSS_MAX_HP + (self.p_hp - p_hp) / I.PLAYER_MAX_HP
        if self.b_hp == 0 or self.p_hp == 0:
            return reward + (0.1 if self.b_hp == 0 else -0.1)
        cx, cy = I.REWARD_CENTER
        now = math.hypot(self.px - cx, self.py - cy)
        before = math.hypot(px - cx, py - cy)
        return reward + (0.01 * (before - now) if now > 4 else 0.0)

    def _obs(self) -> dict[str, Any]:
        pz, bz = floor_z(self.px, self.py), floor_z(self.bx, self.by)
        # The camera sits behind and above the player, looking at Iudex.
        dx, dy = self.bx - self.px, self.by - self.py
        d = math.hypot(dx, dy) or 1.0
        cam = (self.px - 3.5 * dx / d, self.py - 3.5 * dy / d, pz + 1.6)
        nx, ny, nz = self.bx - cam[0], self.by - cam[1], bz + 1.0 - cam[2]
        n = math.sqrt(nx * nx + ny * ny + nz * nz) or 1.0
        return {
            "phase": self.phase,
            "player_hp": np.array([self.p_hp], dtype=np.float32),
            "player_max_hp": I.PLAYER_MAX_HP,
            "player_sp": np.array([self.p_sp], dtype=np.float32),
            "player_max_sp": I.PLAYER_MAX_SP,
            "boss_hp": np.array([self.b_hp], dtype=np.float32),
            "boss_max_hp": I.BOSS_MAX_HP,
            "player_pose": np.array([self.px, self.py, pz, wrap(self.pyaw)], dtype=np.float32),
            "boss_pose": np.array([self.bx, self.by, bz, wrap(self.byaw)], dtype=np.float32),
            "camera_pose": np.array([*cam, nx / n, ny / n, nz / n], dtype=np.float32),
            "player_animation": I.PLAYER_ANIMATION_IDS[self.p_anim],
            # SoulsGym declares Box(0, 10) and the game goes past it; the arena stays inside.
            "player_animation_duration": np.array([min(self.p_t, 10.0)], dtype=np.float32),
            "boss_animation": I.BOSS_ANIMATION_IDS[self.b_anim],
            "boss_animation_duration": np.array([min(self.b_t, 10.0)], dtype=np.float32),
            "lock_on": not self.p_grabbed,
        }

    def _wait_for_pace(self) -> None:
        self._next_step_at += DT / self.game_speed
        delay = self._next_step_at - self._clock()
        if delay > 0:
            self._sleep(delay)
        else:  # running behind (a slow policy): do not try to catch up with a burst of steps
            self._next_step_at = self._clock()
