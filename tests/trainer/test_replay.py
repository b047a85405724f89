import numpy as np
import pytest

from client_app.policy import ObsNorm
from client_app.protocol import Chunk
from trainer.config import DQNConfig
from trainer.replay import (
    Batch,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    n_step_targets,
    replay_buffer_for,
    stacked_obs,
)


def chunk(obs_rows, actions, rewards, *, terminated=False, truncated=False):
    return Chunk(
        id="c",
        model_version=0,
        obs=np.array(obs_rows, dtype=np.float32).reshape(len(obs_rows), 1),
        actions=np.array(actions, dtype=np.int64),
        rewards=np.array(rewards, dtype=np.float32),
        terminated=terminated,
        truncated=truncated,
    )


def stored(buffer: ReplayBuffer) -> list[tuple]:
    """(obs, action, return, next obs, discount) of every stored transition, in slot order."""
    n = len(buffer)
    return list(
        zip(
            buffer.obs[:n, 0].tolist(),
            buffer.actions[:n].tolist(),
            buffer.returns[:n].tolist(),
            buffer.next_obs[:n, 0].tolist(),
            buffer.discounts[:n].tolist(),
            strict=True,
        )
    )


# Five steps with rewards 1..5, gamma 0.5, n = 3 (observation t is the number t):
#   G_0 = 1 + 0.5*2 + 0.25*3 = 2.75   G_1 = 2 + 1.5 + 1 = 4.5   G_2 = 3 + 2 + 1.25 = 6.25
#   G_3 = 4 + 0.5*5 = 6.5 (2 steps left)   G_4 = 5 (1 step left)
# Next observations 3, 4, 5, 5, 5; bootstrap discounts 0.5^3, 0.5^3, 0.5^3, 0.5^2, 0.5^1, except
# that a terminated episode does not bootstrap from obs[5]: the last three then have discount 0.
FIVE = ([0, 1, 2, 3, 4, 5], [0, 1, 0, 1, 0], [1, 2, 3, 4, 5])


def test_n_step_returns_of_a_terminated_chunk():
    buffer = ReplayBuffer(10, 1, gamma=0.5, n_step=3)
    assert buffer.add_chunk(chunk(*FIVE, terminated=True)) == 5
    assert stored(buffer) == [
        (0, 0, 2.75, 3, 0.125),
        (1, 1, 4.5, 4, 0.125),
        (2, 0, 6.25, 5, 0.0),
        (3, 1, 6.5, 5, 0.0),
        (4, 0, 5.0, 5, 0.0),
    ]


@pytest.mark.parametrize("truncated", [True, False], ids=["truncated", "mid-episode"])
def test_n_step_returns_of_a_chunk_that_bootstraps(truncated):
    # A truncated episode (time limit, a client that quit) and a chunk in mid-episode both bootstrap
    # from obs[T]; the horizon shrinks towards the chunk's end instead of reaching into the next one.
    buffer = ReplayBuffer(10, 1, gamma=0.5, n_step=3)
    buffer.add_chunk(chunk(*FIVE, truncated=truncated))
    assert stored(buffer) == [
        (0, 0, 2.75, 3, 0.125),
        (1, 1, 4.5, 4, 0.125),
        (2, 0, 6.25, 5, 0.125),
        (3, 1, 6.5, 5, 0.25),
        (4, 0, 5.0, 5, 0.5),
    ]


def test_one_step_transitions_are_the_classic_ones():
    """n = 1: (obs[t], a[t], r[t], obs[t+1]) discounted by gamma, or 0 after a terminated last step."""
    buffer = ReplayBuffer(10, 1, gamma=0.5, n_step=1)
    buffer.add_chunk(chunk([0, 1, 2, 3], [1, 0, 1], [0.5, 1.5, 2.5], terminated=True))
    buffer.add_chunk(chunk([7, 8, 9], [0, 0], [1, 1], truncated=True))
    assert stored(buffer) == [
        (0, 1, 0.5, 1, 0.5),
        (1, 0, 1.5, 2, 0.5),
        (2, 1, 2.5, 3, 0.0),
        (7, 0, 1.0, 8, 0.5),
        (8, 0, 1.0, 9, 0.5),
    ]


def test_n_longer_than_the_chunk_uses_every_step_it_has():
    returns, horizons, discounts = n_step_targets(np.array([1.0, 1.0]), terminated=False, gamma=0.5, n=20)
    assert returns.tolist() == [1.5, 1.0] and horizons.tolist() == [2, 1]
    assert discounts.tolist() == [0.25, 0.5]


def test_n_step_targets_match_a_per_step_loop_on_a_long_chunk():
    rng = np.random.default_rng(0)
    rewards, gamma, n = rng.normal(size=128), 0.99, 5
    returns, horizons, discounts = n_step_targets(rewards, terminated=True, gamma=gamma, n=n)
    for t in range(128):
        m = min(n, 128 - t)
        assert horizons[t] == m
        assert returns[t] == pytest.approx(sum(gamma**k * rewards[t + k] for k in range(m)))
        assert discounts[t] == (0.0 if t + m == 128 else gamma**m)


def test_the_ring_overwrites_the_oldest_transitions():
    buffer = ReplayBuffer(4, 1, gamma=0.99, n_step=1)
    buffer.add_chunk(chunk([0, 1, 2, 3], [0, 0, 0], [0, 1, 2]))
    buffer.add_chunk(chunk([10, 11, 12], [1, 1], [10, 11], terminated=True))
    assert len(buffer) == 4 and buffer.pos == 1
    # Slot 0 now holds the newest transition, slots 1-3 the older ones that survived.
    assert buffer.obs[:, 0].tolist() == [11, 1, 2, 10]
    assert buffer.next_obs[:, 0].tolist() == [12, 2, 3, 11]
    assert buffer.discounts.tolist() == pytest.approx([0, 0.99, 0.99, 0.99])


def test_a_chunk_longer_than_the_buffer_keeps_its_newest_transitions():
    buffer = ReplayBuffer(2, 1, gamma=0.5, n_step=2)
    buffer.add_chunk(chunk([0, 1, 2, 3, 4], [0, 1, 0, 1], [0, 1, 2, 3], terminated=True))
    assert sorted(stored(buffer)) == [(2, 0, 3.5, 4, 0.0), (3, 1, 3.0, 4, 0.0)]


def test_actions_are_stored_as_indices_from_the_space_start():
    buffer = ReplayBuffer(4, 1, gamma=0.99, n_step=1, action_start=-1)
    buffer.add_chunk(chunk([0, 1, 2], [-1, 1], [0, 0]))
    assert buffer.actions[:2].tolist() == [0, 2]


def test_multidimensional_observations_are_flattened_and_checked():
    buffer = ReplayBuffer(4, 6, gamma=0.99, n_step=1)
    c = Chunk(
        id="c",
        model_version=0,
        obs=np.zeros((3, 2, 3), np.uint8),
        actions=np.zeros(2, np.int64),
        rewards=np.zeros(2, np.float32),
    )
    buffer.add_chunk(c)
    assert buffer.obs.dtype == np.float32 and len(buffer) == 2
    with pytest.raises(ValueError):
        ReplayBuffer(4, 5, gamma=0.99, n_step=1).add_chunk(c)


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_sample_returns_a_typed_batch_of_real_transitions(prioritized):
    config = DQNConfig(buffer_size=100, batch_size=32, learning_starts=32, n_step=1, prioritized=prioritized)
    buffer = replay_buffer_for(config, obs_dim=1)
    assert isinstance(buffer, PrioritizedReplayBuffer) == prioritized
    buffer.add_chunk(chunk(list(range(51)), [0] * 50, list(range(50)), terminated=True))
    batch = buffer.sample(32, np.random.default_rng(0), beta=0.4)
    assert isinstance(batch, Batch)
    assert batch.obs.shape == batch.next_obs.shape == (32, 1)
    assert batch.obs.dtype == batch.weights.dtype == np.float32 and batch.actions.dtype == np.int64
    # Every sampled transition is a real one: next obs follows obs, the return equals obs here.
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    np.testing.assert_array_equal(batch.returns, batch.obs[:, 0])
    np.testing.assert_array_equal(batch.obs[:, 0], buffer.obs[batch.indices, 0])
    np.testing.assert_allclose(batch.discounts, np.where(batch.obs[:, 0] == 49, 0.0, 0.99))
    # All priorities are equal before any update, so every weight is 1.
    np.testing.assert_array_equal(batch.weights, 1.0)
    # obs and next_obs are the halves of one array: the learner normalises and multiplies them as one.
    pair = stacked_obs(batch.obs, batch.next_obs)
    assert pair.shape == (64, 1) and np.shares_memory(pair, batch.obs) and np.shares_memory(pair, batch.next_obs)
    np.testing.assert_array_equal(pair, np.concatenate([batch.obs, batch.next_obs]))


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_a_batch_sampled_with_the_normaliser_is_the_normalised_batch_to_the_bit(prioritized):
    """``sample(norm=...)`` gathers and normalises in one compiled pass: the learner trains on exactly
    the numbers ``ObsNorm`` gives (clipping included), and the batch is otherwise the same draw."""
    config = DQNConfig(buffer_size=200, batch_size=32, learning_starts=32, n_step=3, prioritized=prioritized)
    buffer = replay_buffer_for(config, obs_dim=3)
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(121, 3)).astype(np.float32) * np.float32([1.0, 50.0, 1e-3])
    buffer.add_chunk(Chunk(id="c", model_version=0, obs=rows, actions=np.zeros(120, np.int64),
                           rewards=rng.normal(size=120).astype(np.float32), terminated=False, truncated=True))
    norm = ObsNorm(np.float32([0.5, -3.0, 0.0]), np.float32([2.0, 0.7, 1e-4]), clip=5.0)
    plain = buffer.sample(48, np.random.default_rng(1), beta=0.4)
    normed = buffer.sample(48, np.random.default_rng(1), beta=0.4, norm=norm)
    np.testing.assert_array_equal(normed.indices, plain.indices)
    np.testing.assert_array_equal(normed.obs, norm(plain.obs))
    np.testing.assert_array_equal(normed.next_obs, norm(plain.next_obs))
    assert np.abs(normed.obs).max() == 5.0  # some values were clipped, as ObsNorm clips them
    np.testing.assert_array_equal(normed.weights, plain.weights)
    np.testing.assert_array_equal(normed.returns, plain.returns)
    assert np.shares_memory(stacked_obs(normed.obs, normed.next_obs), normed.obs)


def test_stacked_obs_copies_only_what_is_not_one_array_already():
    rng = np.random.default_rng(0)
    whole = rng.normal(size=(8, 3)).astype(np.float32)
    view = stacked_obs(whole[:4], whole[4:])
    assert np.shares_memory(view, whole)
    np.testing.assert_array_equal(view, whole)
    # Two separate arrays, the halves in the wrong order, or a strided half: a concatenation.
    for obs, next_obs in ((whole[:4].copy(), whole[4:].copy()), (whole[4:], whole[:4]), (whole[::2], whole[1::2])):
        pair = stacked_obs(obs, next_obs)
        assert not np.shares_memory(pair, whole)
        np.testing.assert_array_equal(pair, np.concatenate([obs, next_obs]))


def test_the_buffer_round_trips_through_a_checkpoint_keeping_the_newest_when_smaller():
    import io

    import torch

    rng = np.random.default_rng(7)
    buffer = ReplayBuffer(10, 2, gamma=0.9, n_step=1, n_actions=2)
    for i in range(3):  # 15 transitions into 10 slots: the ring wrapped
        buffer.add_chunk(
            Chunk(id=f"c{i}", model_version=0, obs=np.full((6, 2), i, np.float32) + np.arange(6)[:, None],
                  actions=rng.integers(0, 2, 5), rewards=np.arange(5, dtype=np.float32) + 10 * i,
                  masks=np.ones((6, 2), bool))
        )
    raw = io.BytesIO()
    torch.save(buffer.state_dict(), raw)
    state = torch.load(io.BytesIO(raw.getvalue()), weights_only=True)

    same = ReplayBuffer(10, 2, gamma=0.9, n_step=1, n_actions=2)
    same.load_state_dict(state)
    assert len(same) == 10
    assert sorted(same.returns[:10].tolist()) == sorted(buffer.returns.tolist())
    assert same.next_masks is not None

    smaller = ReplayBuffer(4, 2, gamma=0.9, n_step=1)
    smaller.load_state_dict(state)
    assert smaller.returns[:4].tolist() == [21.0, 22.0, 23.0, 24.0]  # the newest four, oldest first


@pytest.mark.parametrize("prioritized", [False, True])
def test_voiding_a_machine_removes_every_transition_it_sent_and_keeps_the_others_in_order(prioritized):
    if prioritized:
        buffer = PrioritizedReplayBuffer(8, 1, gamma=0.5, n_step=1, alpha=0.6, eps=1e-6)
    else:
        buffer = ReplayBuffer(8, 1, gamma=0.5, n_step=1)
    buffer.add_chunk(chunk([0, 1, 2, 3], [0, 0, 0], [0, 1, 2]), machine_id=7)  # slots 0-2
    buffer.add_chunk(chunk([10, 11, 12], [1, 1], [10, 11]), machine_id=3)  # slots 3-4
    buffer.add_chunk(chunk([20, 21, 22, 23, 24], [0, 1, 0, 1], [20, 21, 22, 23]), machine_id=7)  # 5-7, 0
    # The ring wrapped: machine 7's last transition overwrote its first. Oldest first: 7 7 3 3 7 7 7 7.
    assert sorted(buffer.machines.tolist()) == [3, 3, 7, 7, 7, 7, 7, 7]

    assert buffer.void(7) == 6
    assert len(buffer) == 2 and buffer.machines[:2].tolist() == [3, 3]
    assert stored(buffer) == [(10.0, 1, 10.0, 11.0, 0.5), (11.0, 1, 11.0, 12.0, 0.5)]
    assert buffer.void(7) == 0  # nothing of it is left
    rng = np.random.default_rng(0)
    assert set(buffer.sample(64, rng).obs[:, 0].tolist()) == {10.0, 11.0}  # only what is left is drawn
    # New transitions go after the kept ones and the ring carries on.
    buffer.add_chunk(chunk([30, 31], [0], [30]), machine_id=5)
    assert len(buffer) == 3 and buffer.machines[:3].tolist() == [3, 3, 5]
    assert set(buffer.sample(256, rng).obs[:, 0].tolist()) == {10.0, 11.0, 30.0}


def test_machine_ids_travel_through_a_checkpoint_and_a_void_after_it_still_finds_them():
    buffer = ReplayBuffer(8, 1, gamma=0.5, n_step=1)
    buffer.add_chunk(chunk([0, 1, 2], [0, 0], [0, 1]), machine_id=4)
    buffer.add_chunk(chunk([5, 6, 7], [1, 1], [5, 6]), machine_id=9)
    restored = ReplayBuffer(8, 1, gamma=0.5, n_step=1)
    restored.load_state_dict(buffer.state_dict())
    assert restored.void(4) == 2
    assert [obs for obs, *_ in stored(restored)] == [5.0, 6.0]
