"""Per-machine statistics and the outlier score (trainer.machine_stats), against hand-computed values."""

import math

import numpy as np
import pytest

from client_app.protocol import Chunk
from trainer.machine_stats import MachineStats, outlier_scores, parse_sums


def episode(length: int, reward: float, obs_value: float = 0.0) -> Chunk:
    return Chunk(
        id="e",
        model_version=0,
        obs=np.full((length + 1, 2), obs_value, np.float32),
        actions=np.zeros(length, np.int64),
        rewards=np.full(length, reward, np.float32),
        terminated=True,
        episode_return=reward * length,
        episode_length=length,
    )


def test_the_sums_add_up_a_machines_steps_rewards_episodes_and_observations(redis_client):
    stats = MachineStats()
    stats.add(3, episode(10, 1.0, obs_value=0.5))
    stats.add(3, episode(20, 1.0, obs_value=-0.5))
    stats.add(0, episode(5, 9.0))  # unknown sender: not counted
    stats.flush(redis_client, "ms")
    stats.add(3, episode(30, 2.0))
    stats.flush(redis_client, "ms")  # sums add up across flushes (and learners)
    sums = parse_sums(redis_client.hgetall("ms"))
    assert list(sums) == [3]
    got = sums[3]
    assert (got["steps"], got["reward"], got["episodes"], got["ret"], got["length"]) == (60, 90, 3, 90, 60)
    assert got["obs0"] == pytest.approx(10 * 0.5 - 20 * 0.5) and got["obs1_sq"] == pytest.approx(30 * 0.25)


def pool(per_machine: dict[int, list[tuple[int, float]]]) -> dict[int, dict[str, float]]:
    stats = MachineStats()
    for machine, episodes in per_machine.items():
        for length, reward in episodes:
            stats.add(machine, episode(length, reward))
    out = {}
    for machine, sums in stats.pending.items():
        out[machine] = sums.fields()
    return out


def test_a_machine_that_doubles_its_rewards_stands_out_and_the_honest_ones_do_not():
    lengths = [10, 20, 30, 40] * 3
    honest = {m: [(length + m, 1.0) for length in lengths] for m in (1, 2, 3, 4)}
    scores = outlier_scores(pool({**honest, 5: [(length, 2.0) for length in lengths]}))
    # Reward per step: the pool's median is 1, its MAD 0, so the spread is the floor 0.02*1 + 0.001:
    # the doubler's residual is (2 - 1) / 0.021 = 47.6.
    assert scores[5].residuals[0][:3] == ("reward per step", 2.0, 1.0)
    assert scores[5].score == pytest.approx(1 / 0.021)
    assert all(scores[m].score < 3 for m in honest)
    assert scores[5].as_json()["residuals"][0] == ["reward per step", 2.0, 1.0, 47.62]


def test_episode_lengths_against_a_pool_that_varies():
    # Episode means 25, 26, 27, 28 (10..40 shifted) and the odd one's 10: median 26, MAD 1 (deviations
    # 16, 1, 0, 1, 2); the odd one's lengths never vary (se 0), so its spread is 1.4826 * MAD.
    honest = {m: [(length + m - 1, 1.0) for length in [10, 20, 30, 40] * 3] for m in (1, 2, 3, 4)}
    short = {5: [(10, 1.0)] * 12}
    scores = outlier_scores(pool({**honest, **short}))
    name, mean, median, z = next(r for r in scores[5].residuals if r[0] == "episode length")
    assert (mean, median) == (10, 26)
    se_short = 0.0  # all its episodes are 10 steps long
    mad = 1.0
    assert z == pytest.approx((10 - 26) / math.sqrt(se_short**2 + (1.4826 * mad) ** 2))


def test_too_few_machines_or_episodes_give_no_score():
    lengths = [10, 20] * 5
    assert outlier_scores(pool({1: [(n, 1.0) for n in lengths], 2: [(n, 2.0) for n in lengths]})) == {}
    few = pool({m: [(10, 1.0)] * 9 for m in (1, 2, 3)})
    assert outlier_scores(few) == {}  # 9 episodes each, 10 needed


def test_junk_in_the_hash_is_skipped():
    assert parse_sums({b"7:steps": b"12", b"x:steps": b"1", b"8:ret": b"nan", b"9:ret": b"zz"}) == {7: {"steps": 12.0}}
