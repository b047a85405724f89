"""Smoke tests of the arena benches: they run, and their JSON says what the docs say it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_arena_bench_reports_win_rates_per_policy_and_boss_damage():
    result = _run("bench/arena.py", "--episodes", "4", "--boss-damage", "1.0", "--sloppy", "0.1")
    assert result["boss_damage"] == 1.0 and result["sloppy"] == 0.1
    for policy in ("random", "masked_random", "scripted", "sloppy_scripted"):
        assert 0.0 <= result[f"{policy}_win_rate"] <= 1.0
    # Full strength, as in the game: random play does not win, and the yardstick (rolling through his
    # hits, striking in his pauses) takes far more of his HP (bench/arena_fidelity.py: its win rate and
    # the hits it takes).
    assert result["random_win_rate"] == 0.0
    assert result["scripted_mean_boss_hp_left"] < result["random_mean_boss_hp_left"] - 0.3
    assert result["steps_per_s"] > 0


def test_arena_dqn_bench_trains_the_learners_agent_and_evaluates_greedy_fights():
    result = _run(
        "bench/arena_dqn.py", "--steps", "2000", "--envs", "2", "--eval-every", "1000", "--eval-episodes", "1",
        "--hyperparams", json.dumps({"learning_starts": 256, "hidden": [32], "eval_every_samples": 0}),
    )
    # Full strength by default.
    assert result["boss_damage"] == 1.0 and result["hyperparams"]["hidden"] == [32]
    steps = [e["env_steps"] for e in result["evaluations"]]
    assert len(steps) == 2 and 1000 <= steps[0] < steps[1]
    for evaluation in result["evaluations"]:
        assert 0.0 <= evaluation["win_rate"] <= 1.0 and 0.0 <= evaluation["boss_hp_left"] <= 1.0
    assert result["first_env_steps_to_win_rate"] is None  # no --win-rate asked


def test_the_one_process_bench_takes_any_env_and_stops_at_a_target_return():
    # Every CartPole episode is worth at least 8: the first evaluation reaches a target of 5, and the run
    # stops there instead of training on to --steps.
    result = _run(
        "bench/arena_dqn.py", "--env", "CartPole-v1", "--envs", "1", "--steps", "5000", "--eval-every", "1200",
        "--eval-episodes", "2", "--target", "5", "--hyperparams", json.dumps({"learning_starts": 256, "hidden": [16]}),
    )
    assert result["env"] == "CartPole-v1" and result["env_kwargs"] == {} and "boss_damage" not in result
    (evaluation,) = result["evaluations"]
    assert evaluation["episodes"] == 2 and evaluation["return"] >= 8 and "win_rate" not in evaluation
    assert result["first_env_steps_to_target"] == evaluation["env_steps"] >= 1200
    assert result["first_env_steps_to_win_rate"] is None


def test_the_one_process_ppo_bench_plays_the_newest_model_and_evaluates_it_greedily():
    result = _run(
        "bench/arena_ppo.py", "--env", "CartPole-v1", "--envs", "2", "--steps", "3000", "--eval-every", "1000",
        "--eval-episodes", "2", "--chunk-steps", "64", "--hyperparams", json.dumps({"rollout_steps": 256, "hidden": [16]}),
    )
    assert result["env"] == "CartPole-v1" and result["hyperparams"]["hidden"] == [16]
    steps = [e["env_steps"] for e in result["evaluations"]]
    assert len(steps) == 3 and 1000 <= steps[0] < steps[1] < steps[2]
    assert all(e["episodes"] == 2 and e["return"] >= 8 for e in result["evaluations"])
    # About one iteration per 256-step rollout, each followed by a new model; nothing was played by a
    # model old enough to be dropped.
    assert 8 <= result["iterations"] <= 12
    assert result["dropped_samples"] == 0
    assert result["first_env_steps_to_target"] is None  # no --target asked
