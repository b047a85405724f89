"""How closely the arena fights like the real Iudex: figures measured the same way on the recording
(tests/data/iudex_recorded_episodes.json) and on arena rollouts, each with a tolerance from the
recording's spread.

A fight is a list of plain observation dicts (the recording's format: HP, SP and durations as numbers),
one before each step and the last one after the final step, with the action taken at each and the
allowed actions of each observation. ``figures(fights)`` measures every quantity of ``METRICS``;
``tolerances(fights)`` gives each its 95% bootstrap interval over the recording's units (hits, attacks,
2 s blocks of steps, fights: whatever the quantity is made of), widened by a stated floor where the
recording is too small to show any spread (a few parries all costing 28 SP). ``compare`` puts the two
side by side. bench/arena_fidelity.py prints the table; the tests check a small rollout.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from client_app import iudex as I

RECORDING = Path(__file__).resolve().parents[2] / "tests" / "data" / "iudex_recorded_episodes.json"
BLOCK = 20  # steps per block (2 s) when a per-step quantity is bootstrapped: steps next to each other are not independent
BOSS_ATTACK_NAMES = frozenset(I.BOSS_ATTACKS) - {"ThrowDef"}  # ThrowDef: Iudex riposted, not his attack
GAP_CLOSERS = frozenset({"Attack3004", "Attack3014"})
#: Each attack's full length: the longest it lasted in the recording (Attack3006 and the rest never appear).
FULL_LENGTH = {
    "Attack3000": 1.67, "Attack3001": 2.79, "Attack3002": 3.84, "Attack3004": 3.16, "Attack3005": 1.26,
    "Attack3007": 2.49, "Attack3008": 3.24, "Attack3010": 1.40, "Attack3012": 1.80, "Attack3013": 1.71,
    "Attack3014": 2.17, "ThrowAtk": 6.02,
}  # fmt: skip
#: Player animations the arena did not produce before issue 16 (the recording shows 26% of its steps in them).
NEW_PLAYER_STATES = frozenset(
    {"RollingMediumSelftra", "EStepDown", "AttackRightLightStep", "AddDamageStartFront", "AddDamageDefault",
     "RunStopBack", "RunStopFront", "RunStopLeft", "RunStopRight", "DamageFling"}
)  # fmt: skip


@dataclass
class Fight:
    obs: list[dict[str, Any]]  # len n + 1: before each step, and after the last one
    actions: list[int]  # len n
    allowed: list[list[int]]  # len n + 1

    @property
    def steps(self) -> int:
        return len(self.actions)


def load_recording(path: Path = RECORDING) -> list[Fight]:
    """The recording as fights. Its last observation of a fight is the one after the final step."""
    data = json.loads(Path(path).read_text())
    fights: list[Fight] = []
    idx: list[int] = []
    for i, ep in enumerate(data["episodes"]):
        if idx and data["episodes"][idx[-1]] != ep:
            fights.append(_fight(data, idx))
            idx = []
        idx.append(i)
    fights.append(_fight(data, idx))
    return fights


def _fight(data: dict, idx: list[int]) -> Fight:
    # The file's action i is the one that led to observation i (its first in an episode, 0, stands for the
    # reset), as its rewards are: a roll started on all 44 recorded steps where the action before was an
    # allowed roll. So the action taken at observation i is the file's action i + 1.
    return Fight(
        obs=[data["observations"][i] for i in idx],
        actions=[int(data["actions"][i]) for i in idx[1:]],
        allowed=[list(data["infos"][i]["allowed_actions"]) for i in idx],
    )


def plain(obs: dict[str, Any]) -> dict[str, Any]:
    """An env observation as the recording holds it (one-element arrays as numbers)."""
    out = {}
    for key, value in obs.items():
        if isinstance(value, np.ndarray):
            out[key] = value.reshape(()).item() if value.shape == (1,) else value.tolist()
        elif isinstance(value, (np.bool_, bool)):
            out[key] = bool(value)
        elif isinstance(value, np.integer):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def rollout(
    env: Any, policy: Callable[[dict, list[int], random.Random], int], seed: int, max_steps: int = 3000
) -> Fight:
    """One fight of ``env`` (the raw arena) with ``policy(obs, allowed, rng)``, recorded as a Fight."""
    obs, info = env.reset(seed=seed)
    rng = random.Random(seed)
    fight = Fight([plain(obs)], [], [list(info["allowed_actions"])])
    for _ in range(max_steps):
        action = policy(obs, info["allowed_actions"], rng)
        obs, _, terminated, truncated, info = env.step(action)
        fight.actions.append(int(action))
        fight.obs.append(plain(obs))
        fight.allowed.append(list(info["allowed_actions"]))
        if terminated or truncated:
            break
    return fight


def uniform_random(obs: dict, allowed: list[int], rng: random.Random) -> int:
    """How the recording was played: any of the 20 actions, whether allowed or not."""
    return rng.randrange(I.N_ACTIONS)


# -- what is measured -------------------------------------------------------------------------------


def _boss(o: dict) -> str:
    a = o["boss_animation"]
    return I.BOSS_ANIMATIONS[a] if 0 <= a < len(I.BOSS_ANIMATIONS) else "?"


def _player(o: dict) -> str:
    a = o["player_animation"]
    return I.PLAYER_ANIMATIONS[a] if 0 <= a < len(I.PLAYER_ANIMATIONS) else "?"


def _dist(o: dict) -> float:
    p, b = o["player_pose"], o["boss_pose"]
    return math.hypot(p[0] - b[0], p[1] - b[1])


def _segments(f: Fight, key: str, names: Callable[[dict], str]) -> list[tuple[str, int, int, float]]:
    """Runs of one animation: (name, first index, last index, duration at the last index)."""
    out: list[tuple[str, int, int, float]] = []
    for i, o in enumerate(f.obs):
        name, t = names(o), float(o[key + "_duration"])
        if out and out[-1][0] == name and t >= out[-1][3] - 1e-6:
            out[-1] = (name, out[-1][1], i, t)
        else:
            out.append((name, i, i, t))
    return out


def _old_reward(a: dict, b: dict) -> float:
    """The reward the recording holds (SoulsGym's Iudex reward of January 2023, commit 1beefee with its
    centre term's fix): 100× the HP terms, ±10 on a kill or a death, else −0.1 per step plus 10× the
    metres moved towards (139, 596) when farther than 4 m. It reproduces the recording's rewards to 1e-12."""
    hp = 100 * (
        (a["boss_hp"] - b["boss_hp"]) / a["boss_max_hp"]
        + (b["player_hp"] - a["player_hp"]) / a["player_max_hp"]
    )
    if b["boss_hp"] == 0 or b["player_hp"] == 0:
        return hp + (10.0 if b["boss_hp"] == 0 else -10.0)
    cx, cy = I.REWARD_CENTER
    now = math.hypot(b["player_pose"][0] - cx, b["player_pose"][1] - cy)
    before = math.hypot(a["player_pose"][0] - cx, a["player_pose"][1] - cy)
    return hp - 0.1 + 10.0 * (before - now) * (now > 4)


def units(fights: Sequence[Fight]) -> dict[str, list]:
    """The recording's (or a rollout's) raw units, from which every figure is computed."""
    u: dict[str, list] = {
        k: [] for k in ("hits", "deaths", "attacks", "gaps", "blocks", "parries", "rolls", "fights")
    }
    for f in fights:
        n = f.steps
        hits = 0
        for i in range(n):
            drop = f.obs[i]["player_hp"] - f.obs[i + 1]["player_hp"]
            if drop > 0:
                hits += 1
                if f.obs[i + 1]["player_hp"] > 0:  # a lethal hit only shows the HP that was left
                    u["hits"].append(drop / I.PLAYER_MAX_HP)
        died = f.obs[-1]["player_hp"] <= 0
        if died:
            u["deaths"].append(hits)
        u["fights"].append({"steps": n, "died": died, "won": f.obs[-1]["boss_hp"] <= 0})
        # Iudex's attacks: chained or not, cut short or not, how he turned, the pause after them.
        segs = _segments(f, "boss_animation", _boss)
        attack_starts = []
        for k, (name, i0, i1, t) in enumerate(segs):
            if name not in BOSS_ATTACK_NAMES:
                continue
            attack_starts.append(i0)
            turns = [
                abs(
                    (f.obs[i + 1]["boss_pose"][3] - f.obs[i]["boss_pose"][3] + math.pi) % (2 * math.pi)
                    - math.pi
                )
                / max(1e-6, f.obs[i + 1]["boss_animation_duration"] - f.obs[i]["boss_animation_duration"])
                for i in range(i0, i1)
            ]
            ended = k + 1 < len(segs)
            nxt = segs[k + 1][0] if ended else None
            chained = nxt in BOSS_ATTACK_NAMES
            u["attacks"].append(
                {
                    "name": name,
                    "start_dist": _dist(f.obs[i0]),
                    "ended": ended,
                    "chained": chained,
                    "cut": chained and t < 0.95 * FULL_LENGTH.get(name, t),
                    "turn": turns,
                }
            )
            if ended and not chained:
                later = [s for s in segs[k + 1 :] if s[0] in BOSS_ATTACK_NAMES]
                if later:
                    u["gaps"].append((later[0][1] - i1) * I.STEP_SECONDS)
        # Per-step quantities, in blocks of BLOCK steps.
        starts = set(attack_starts)
        for b0 in range(0, n, BLOCK):
            rows = []
            for i in range(b0, min(n, b0 + BLOCK)):
                o, o1 = f.obs[i], f.obs[i + 1]
                allowed = set(f.allowed[i])
                rows.append(
                    (
                        _boss(o) == "IdleBattle",
                        _boss(o) in ("WalkLeftBattle", "WalkRightBattle"),
                        i in starts,
                        _dist(o),
                        float(o["player_sp"]),
                        0 in allowed,
                        8 in allowed,
                        I.LIGHT_ATTACK in allowed,
                        I.compute_reward(o, o1),
                        _old_reward(o, o1),
                        not o["lock_on"],
                        _player(o) in NEW_PLAYER_STATES,
                        _player(o) == "RollingMediumSelftra",
                    )
                )
            u["blocks"].append(rows)
        # The player's parries (SP paid) and rolls (metres covered).
        psegs = _segments(f, "player_animation", _player)
        for name, i0, i1, _ in psegs:
            if name == "ParryLeftStart" and i0 > 0 and i1 - i0 >= 3:
                before = f.obs[i0 - 1]["player_sp"]
                u["parries"].append(before - min(f.obs[j]["player_sp"] for j in range(i0, i0 + 4)))
            if name in ("RollingMedium", "RollingMediumSelftra") and i0 > 0 and i1 < n:
                p0, p1 = f.obs[i0 - 1]["player_pose"], f.obs[min(i1, i0 + 8)]["player_pose"]
                if f.obs[i1]["player_animation_duration"] >= 0.7:  # a whole roll, not one cut by a hit
                    u["rolls"].append(math.hypot(p1[0] - p0[0], p1[1] - p0[1]))
    return u


def _col(blocks: list[list[tuple]], c: int) -> list:
    return [row[c] for block in blocks for row in block]


def _share(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")


def _tv(names: list[str], ref: dict[str, float]) -> float:
    if not names:
        return float("nan")
    keys = set(names) | set(ref)
    mix = {k: names.count(k) / len(names) for k in keys}
    return 0.5 * sum(abs(mix.get(k, 0.0) - ref.get(k, 0.0)) for k in keys)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # which list of units() it is made of, and what is resampled
    what: str
    fn: Callable[[dict[str, list], dict[str, Any]], float]
    floor: float = 0.0  # the least half-width of its tolerance (a measurement's resolution)


def _attack_mix(u: dict[str, list]) -> dict[str, float]:
    names = [a["name"] for a in u["attacks"]]
    return {k: names.count(k) / len(names) for k in set(names)} if names else {}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


METRICS: tuple[Metric, ...] = (
    Metric("damage_per_hit", "hits", "median HP lost per non-lethal hit, share of max HP",
           lambda u, r: float(np.median(u["hits"])) if u["hits"] else float("nan")),
    Metric("hits_to_die", "deaths", "mean hits taken in a fight the player lost",
           lambda u, r: _share(u["deaths"])),
    Metric("fight_steps", "fights", "mean steps to the end of a fight",
           lambda u, r: _share([f["steps"] for f in u["fights"]])),
    Metric("attacks_per_min", "blocks", "attacks started per minute of fight",
           lambda u, r: 600.0 * _share(_col(u["blocks"], 2))),
    Metric("chain_share", "attacks", "share of finished attacks followed at once by another",
           lambda u, r: _share([a["chained"] for a in u["attacks"] if a["ended"]])),
    Metric("cut_share", "attacks", "share of chained attacks cut before 95% of their full length",
           lambda u, r: _share([a["cut"] for a in u["attacks"] if a["chained"]])),
    Metric("pause_after_attack_s", "gaps", "median seconds from an unchained attack's end to the next attack",
           lambda u, r: float(np.median(u["gaps"])) if u["gaps"] else float("nan"), floor=0.2),
    Metric("turn_deg_s_attack", "attacks", "median turn rate during attacks, degrees per second",
           lambda u, r: math.degrees(float(np.median([t for a in u["attacks"] for t in a["turn"]] or [float("nan")])))),
    Metric("turn_deg_s_attack_p75", "attacks", "75th percentile of the turn rate during attacks, °/s",
           lambda u, r: math.degrees(_pct([t for a in u["attacks"] for t in a["turn"]], 75))),
    Metric("turn_deg_s_attack_p90", "attacks", "90th percentile of the turn rate during attacks, °/s",
           lambda u, r: math.degrees(_pct([t for a in u["attacks"] for t in a["turn"]], 90))),
    Metric("idle_share", "blocks", "share of steps Iudex stands (IdleBattle)",
           lambda u, r: _share(_col(u["blocks"], 0))),
    Metric("strafe_share", "blocks", "share of steps Iudex circles (WalkLeft/RightBattle)",
           lambda u, r: _share(_col(u["blocks"], 1))),
    Metric("grab_share", "attacks", "share of attacks that are the grab (ThrowAtk)",
           lambda u, r: _share([a["name"] == "ThrowAtk" for a in u["attacks"]])),
    Metric("gap_closer_share", "attacks", "share of attacks that are gap-closers (Attack3004, 3014)",
           lambda u, r: _share([a["name"] in GAP_CLOSERS for a in u["attacks"]])),
    Metric("attack_mix_tv", "attacks", "total variation distance of the attack mix from the recording's",
           lambda u, r: _tv([a["name"] for a in u["attacks"]], r["mix"])),
    Metric("distance_p25", "blocks", "25th percentile of the player–boss distance, m",
           lambda u, r: _pct(_col(u["blocks"], 3), 25)),
    Metric("distance_p50", "blocks", "median player–boss distance, m", lambda u, r: _pct(_col(u["blocks"], 3), 50)),
    Metric("distance_p75", "blocks", "75th percentile of the player–boss distance, m",
           lambda u, r: _pct(_col(u["blocks"], 3), 75)),
    Metric("sp_p05", "blocks", "5th percentile of the player's SP", lambda u, r: _pct(_col(u["blocks"], 4), 5), floor=3.0),
    Metric("sp_negative_share", "blocks", "share of steps with SP below 0",
           lambda u, r: _share([s < 0 for s in _col(u["blocks"], 4)])),
    Metric("parry_sp", "parries", "median SP lost in a parry's first 0.4 s", lambda u, r: float(np.median(u["parries"])) if u["parries"] else float("nan"), floor=1.0),
    Metric("roll_m", "rolls", "median metres a whole roll covers", lambda u, r: float(np.median(u["rolls"])) if u["rolls"] else float("nan"), floor=0.2),
    Metric("walk_allowed", "blocks", "share of steps a walk is allowed", lambda u, r: _share(_col(u["blocks"], 5))),
    Metric("roll_allowed", "blocks", "share of steps a roll is allowed", lambda u, r: _share(_col(u["blocks"], 6))),
    Metric("attack_allowed", "blocks", "share of steps an attack or parry is allowed",
           lambda u, r: _share(_col(u["blocks"], 7))),
    Metric("reward_per_step", "blocks", "mean reward per step, soulsgym 1.1.0's formula",
           lambda u, r: _share(_col(u["blocks"], 8))),
    Metric("old_reward_per_step", "blocks", "mean reward per step, the recording's (older) formula",
           lambda u, r: _share(_col(u["blocks"], 9))),
    Metric("lock_lost_share", "blocks", "share of steps without lock-on", lambda u, r: _share(_col(u["blocks"], 10))),
    Metric("new_player_state_share", "blocks", "share of steps in chained rolls, get-ups, step attacks, hit reactions, run stops",
           lambda u, r: _share(_col(u["blocks"], 11))),
    Metric("chained_roll_share", "blocks", "share of steps in a chained roll (RollingMediumSelftra)",
           lambda u, r: _share(_col(u["blocks"], 12))),
)  # fmt: skip


def figures(fights: Sequence[Fight], ref: dict[str, Any] | None = None) -> dict[str, float]:
    """Every metric on these fights. ``ref`` carries the recording's attack mix (for attack_mix_tv)."""
    u = units(fights)
    ref = ref if ref is not None else {"mix": _attack_mix(units(load_recording()))}
    return {m.name: m.fn(u, ref) for m in METRICS}


def tolerances(fights: Sequence[Fight], n_boot: int = 2000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Each metric's 95% percentile-bootstrap interval: the metric's units (hits, attacks, 2 s blocks,
    fights) resampled with replacement ``n_boot`` times, then widened to at least ``floor`` either side
    of the recording's value. attack_mix_tv's interval is [0, 95th percentile of the resamples' own
    distance from the recording's mix]: how far 23 attacks drawn from the true mix land from it."""
    u = units(fights)
    ref = {"mix": _attack_mix(u)}
    rng = random.Random(seed)
    out: dict[str, tuple[float, float]] = {}
    for m in METRICS:
        base = m.fn(u, ref)
        pool = u[m.unit]
        samples = []
        for _ in range(n_boot):
            v = dict(u)
            v[m.unit] = [pool[rng.randrange(len(pool))] for _ in pool] if pool else []
            samples.append(m.fn(v, ref))
        samples = [s for s in samples if not math.isnan(s)]
        if m.name == "attack_mix_tv":
            lo, hi = 0.0, float(np.percentile(samples, 95))
        else:
            lo, hi = float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))
        out[m.name] = (min(lo, base - m.floor), max(hi, base + m.floor))
    return out


def compare(
    arena: dict[str, float], real: dict[str, float], tol: dict[str, tuple[float, float]]
) -> list[dict]:
    rows = []
    for m in METRICS:
        lo, hi = tol[m.name]
        value = arena[m.name]
        rows.append(
            {
                "metric": m.name,
                "what": m.what,
                "real": real[m.name],
                "tolerance": [lo, hi],
                "arena": value,
                "pass": bool(not math.isnan(value) and lo - 1e-9 <= value <= hi + 1e-9),
            }
        )
    return rows


def scripted_figures(fights: Sequence[Fight]) -> dict[str, float]:
    """Win rate and hits taken of a (scripted) player's fights."""
    wins, hits, untouched = 0, [], 0
    for f in fights:
        n = sum(1 for i in range(f.steps) if f.obs[i + 1]["player_hp"] < f.obs[i]["player_hp"])
        won = f.obs[-1]["boss_hp"] <= 0
        wins += won
        untouched += won and n == 0
        hits.append(n)
    k = max(1, len(fights))
    return {
        "win_rate": wins / k,
        "mean_hits_taken": float(np.mean(hits)) if hits else float("nan"),
        "untouched_win_rate": untouched / k,
        "fights": len(fights),
    }
