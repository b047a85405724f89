"""The learner's evaluation schedule: spacing, and the budget that keeps evaluation a small share of steps."""

from trainer.evaluation import TRAIL_EPISODES, EvaluationSchedule
from trainer.keys import CampaignKeys

KEYS = CampaignKeys(7)


def model(version: int) -> dict:
    return {"version": version, "url": f"/models/{version}", "sha256": "0" * 64}


def play(client, version: int, *, episodes: int, steps: int) -> None:
    """What the relay records when clients report an evaluation's episodes."""
    client.hincrby(KEYS.evals(version), "episodes", episodes)
    client.hincrby(KEYS.evals(version), "steps", steps)
    client.hincrby(KEYS.stats, "eval_steps", steps)


def train(schedule: EvaluationSchedule, episode_return: float, length: int) -> None:
    """Training episodes the learner ingests, enough to fill the schedule's trailing window."""
    for _ in range(TRAIL_EPISODES):
        schedule.observe(episode_return, length)


def test_long_evaluations_are_spaced_out_to_a_tenth_of_client_steps(redis_client):
    schedule = EvaluationSchedule(redis_client, KEYS, every_samples=1_000, episodes=2, max_share=0.1)
    assert not schedule.due(999)
    assert schedule.due(1_000)  # nothing spent yet: the first one goes out on time
    schedule.request(model(3), samples_total=1_000)
    assert not schedule.due(2_000)  # still being played
    play(redis_client, 3, episodes=2, steps=1_000)  # two 500-step episodes
    # Another 1,000 steps on top of the 1,000 spent are at most a tenth of all client steps (training
    # and evaluation) from 18,000 training samples on: 2,000 <= 0.1 * (18,000 + 2,000).
    assert not schedule.due(17_999)
    assert schedule.due(18_000)
    schedule.request(model(9), samples_total=18_000)
    play(redis_client, 9, episodes=2, steps=1_000)
    assert not schedule.due(26_999) and schedule.due(27_000)  # 3,000 <= 0.1 * (27,000 + 3,000)


def test_short_evaluations_keep_their_spacing(redis_client):
    schedule = EvaluationSchedule(redis_client, KEYS, every_samples=1_000, episodes=2, max_share=0.1)
    schedule.request(model(1), samples_total=1_000)
    play(redis_client, 1, episodes=2, steps=40)  # an agent that still loses fast
    assert not schedule.due(1_999)
    assert schedule.due(2_000)


def test_without_a_budget_evaluations_follow_the_spacing_alone(redis_client):
    schedule = EvaluationSchedule(redis_client, KEYS, every_samples=1_000, episodes=2, max_share=1.0)
    schedule.request(model(1), samples_total=1_000)
    play(redis_client, 1, episodes=2, steps=50_000)
    assert schedule.due(2_000)


def test_the_summary_gives_the_returns_spread_for_the_roll_out_gate():
    from trainer.evaluation import evaluation_summary

    # Returns 400, 500, 600 (as the relay sums them): mean 500, sample standard deviation 100.
    raw = {b"wanted": b"3", b"episodes": b"3", b"return_sum": b"1500", b"return_sq_sum": b"770000", b"steps": b"1500"}
    summary = evaluation_summary(raw)
    assert (summary.mean_return, summary.return_std) == (500.0, 100.0)
    # Results recorded before the squares were summed: no spread, so the gate holds nothing back.
    assert evaluation_summary({b"episodes": b"3", b"return_sum": b"1500"}).return_std is None


def test_an_improving_agent_is_forecast_at_its_current_episode_length_not_its_last_evaluation(redis_client):
    schedule = EvaluationSchedule(redis_client, KEYS, every_samples=1_000, episodes=2, max_share=0.1)
    schedule.request(model(1), samples_total=1_000)
    play(redis_client, 1, episodes=2, steps=40)  # it still lost fast then
    train(schedule, 500.0, 500)  # now it balances the whole 500 steps: 1,000 per evaluation
    # The last evaluation's 40 steps would fit at 2,000 samples; two 500-step episodes fit only
    # once 1,040 <= 0.1 * (samples + 1,040), i.e. from 9,360 samples on.
    assert schedule.forecast_cost() == 1_000
    assert not schedule.due(2_000)
    assert not schedule.due(9_000)
    assert schedule.due(10_000)


def test_under_a_budget_an_agent_that_got_worse_waits_until_it_recovers_or_a_plateau_passes(redis_client):
    schedule = EvaluationSchedule(redis_client, KEYS, every_samples=1_000, episodes=2, max_share=0.1)
    train(schedule, 100.0, 10)
    schedule.request(model(1), samples_total=1_000)
    play(redis_client, 1, episodes=2, steps=20)
    train(schedule, 50.0, 10)  # training returns fell since: not worth the budget
    assert not schedule.due(2_000)
    assert not schedule.due(4_999)
    assert schedule.due(5_000)  # four spacings on, it is evaluated anyway: progress stays visible
    train(schedule, 120.0, 10)  # it recovered: evaluated on the spacing again
    assert schedule.due(2_000)


def test_without_a_budget_the_training_returns_do_not_hold_evaluations_back(redis_client):
    schedule = EvaluationSchedule(redis_client, KEYS, every_samples=1_000, episodes=2, max_share=1.0)
    train(schedule, 100.0, 10)
    schedule.request(model(1), samples_total=1_000)
    play(redis_client, 1, episodes=2, steps=20)
    train(schedule, -50.0, 400)
    assert schedule.due(2_000)
