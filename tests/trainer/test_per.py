import numpy as np
import pytest

from client_app.protocol import Chunk
from trainer.per import SumTree, WideSumTree, beta_at, importance_weights, priority
from trainer.replay import PrioritizedReplayBuffer


def test_sum_tree_totals_follow_updates():
    tree = SumTree(5)  # 8 leaves, 3 of them never used
    tree.update(np.arange(5), np.array([1.0, 2.0, 3.0, 4.0, 0.0]))
    assert tree.total == 10.0
    tree.update(2, 0.5)
    assert tree.total == 7.5
    tree.update(np.array([0, 0, 4]), np.array([9.0, 3.0, 1.0]))  # a repeated leaf keeps its last value
    assert tree[np.arange(5)].tolist() == [3.0, 2.0, 0.5, 4.0, 1.0]
    assert tree.total == 10.5
    # Every inner node is still the sum of its children.
    inner = np.arange(1, tree.leaves)
    np.testing.assert_array_equal(tree.nodes[inner], tree.nodes[2 * inner] + tree.nodes[2 * inner + 1])


def test_sum_tree_find_maps_prefix_sums_to_leaves():
    tree = SumTree(5)
    tree.update(np.arange(5), np.array([1.0, 2.0, 0.0, 3.0, 4.0]))
    # Cumulative sums 1, 3, 3, 6, 10: leaf 2 has no mass and is never found.
    values = np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    assert tree.find(values).tolist() == [0, 0, 1, 1, 3, 3, 4, 4]
    # A value rounded up to the total lands on the last leaf with mass, never on an empty one.
    assert tree.find(np.array([10.0, 10.0 + 1e-9])).tolist() == [4, 4]


def test_sum_tree_samples_in_proportion_to_priority():
    tree = SumTree(4)
    tree.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(0)
    draws = np.concatenate([tree.sample(64, rng) for _ in range(2_000)])
    frequencies = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.005)


def test_stratified_sampling_takes_one_leaf_per_segment():
    tree = SumTree(4)
    tree.update(np.arange(4), np.ones(4))
    # Four equal leaves and four segments: each batch holds every leaf exactly once.
    for _ in range(10):
        assert tree.sample(4, np.random.default_rng()).tolist() == [0, 1, 2, 3]


def test_priority_is_the_error_plus_eps_to_the_alpha():
    np.testing.assert_allclose(
        priority(np.array([-2.0, 0.0, 3.0]), 0.5, 1e-6), [(2 + 1e-6) ** 0.5, 1e-3, 3.000001**0.5]
    )
    np.testing.assert_array_equal(priority(np.array([-2.0, 5.0]), 0.0, 1e-6), [1.0, 1.0])


def test_importance_weights_against_hand_computed_values():
    # N = 4, P = (0.1, 0.2, 0.3, 0.4), beta = 0.5: w = (4 P)^-0.5 = 1/sqrt(0.4, 0.8, 1.2, 1.6),
    # divided by the largest, 1/sqrt(0.4): sqrt(0.4 / (0.4, 0.8, 1.2, 1.6)) = (1, sqrt(1/2), sqrt(1/3), 1/2).
    weights = importance_weights(np.array([0.1, 0.2, 0.3, 0.4]), 4, 0.5)
    np.testing.assert_allclose(weights, [1.0, 0.5**0.5, (1 / 3) ** 0.5, 0.5])
    # beta = 1 corrects fully: w is proportional to 1 / P.
    np.testing.assert_allclose(importance_weights(np.array([0.1, 0.4]), 4, 1.0), [1.0, 0.25])
    # beta = 0 does not correct at all.
    np.testing.assert_array_equal(importance_weights(np.array([0.1, 0.4]), 4, 0.0), [1.0, 1.0])


def test_beta_anneals_linearly_to_one():
    assert [beta_at(u, 0.4, 100) for u in (0, 50, 100, 1_000)] == pytest.approx([0.4, 0.7, 1.0, 1.0])
    assert beta_at(0, 0.4, 0) == 1.0


def four_transitions(alpha=1.0) -> PrioritizedReplayBuffer:
    buffer = PrioritizedReplayBuffer(8, 1, gamma=0.99, n_step=1, alpha=alpha, eps=1e-6)
    buffer.add_chunk(
        Chunk(
            id="c",
            model_version=0,
            obs=np.arange(5, dtype=np.float32).reshape(5, 1),
            actions=np.zeros(4, np.int64),
            rewards=np.zeros(4, np.float32),
        )
    )
    return buffer


def test_a_tiny_buffer_weights_its_samples_by_hand_computed_values():
    buffer = four_transitions(alpha=1.0)
    buffer.update_priorities(np.arange(4), np.array([1.0, -2.0, 3.0, -4.0]))  # P = 0.1, 0.2, 0.3, 0.4
    batch = buffer.sample(64, np.random.default_rng(0), beta=0.5)
    # Stratified over 64 segments of the total 10: 6.4 segments per unit of priority, so leaf i is
    # drawn 6.4 * (i + 1) times, give or take the one segment straddling each boundary.
    counts = np.bincount(batch.indices, minlength=4)
    assert np.all(np.abs(counts - 6.4 * np.arange(1, 5)) < 1)
    # Every leaf is in the batch, so the weights are those of the hand-computed example.
    expected = {0: 1.0, 1: 0.5**0.5, 2: (1 / 3) ** 0.5, 3: 0.5}
    np.testing.assert_allclose(batch.weights, [expected[i] for i in batch.indices], rtol=1e-5)


def test_the_largest_weight_of_every_batch_is_one():
    buffer = four_transitions(alpha=0.6)
    rng = np.random.default_rng(1)
    buffer.update_priorities(np.arange(4), rng.normal(size=4) * 10)
    for beta in (0.4, 0.7, 1.0):
        for _ in range(20):
            weights = buffer.sample(8, rng, beta=beta).weights
            assert weights.max() == 1.0 and weights.min() > 0


def test_new_transitions_get_the_largest_priority_so_far():
    buffer = four_transitions(alpha=1.0)
    assert buffer.tree[np.arange(4)].tolist() == [1.0, 1.0, 1.0, 1.0]  # before any TD error: 1
    buffer.update_priorities(np.array([0, 1]), np.array([0.5, -6.0]))
    buffer.update_priorities(np.array([2]), np.array([0.25]))
    buffer.add_chunk(
        Chunk(
            id="d",
            model_version=0,
            obs=np.zeros((3, 1), np.float32),
            actions=np.zeros(2, np.int64),
            rewards=np.zeros(2, np.float32),
        )
    )
    np.testing.assert_allclose(buffer.tree[np.arange(6)], [0.5, 6.0, 0.25, 1.0, 6.0, 6.0], rtol=1e-5)
    assert buffer.tree.total == pytest.approx(19.75)


@pytest.mark.parametrize("capacity", [5, 64, 100, 4097, 200_000])
def test_wide_sum_tree_samples_exactly_as_the_binary_reference(capacity):
    """The replay buffer's 64-ary tree picks the same leaves as the textbook binary tree: same
    totals, same leaf for the same random numbers, empty leaves never drawn, after any updates."""
    rng = np.random.default_rng(capacity)
    reference, wide = SumTree(capacity), WideSumTree(capacity)
    priorities = rng.random(capacity) ** 3
    priorities[rng.random(capacity) < 0.2] = 0.0  # empty leaves, some at the ends of sibling rows
    priorities[0] = 1.0
    for tree in (reference, wide):
        tree.update(np.arange(capacity), priorities)
        tree.update(np.array([0, 0, capacity - 1]), np.array([9.0, 3.0, 0.0]))  # last value wins
    assert wide.total == pytest.approx(reference.total, rel=1e-12)
    np.testing.assert_array_equal(wide[np.arange(capacity)], reference[np.arange(capacity)])
    draws_ref, draws_wide = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(50):
        leaves = wide.sample(64, draws_wide)
        np.testing.assert_array_equal(leaves, reference.sample(64, draws_ref))
        assert (wide[leaves] > 0).all()
        # New priorities for the sampled leaves, as the learner hands them back.
        new = draws_ref.random(64)
        draws_wide.random(64)
        reference.update(leaves, new)
        wide.update(leaves, new)
    # Prefix sums at and past the total land on the last leaf with mass, as in the reference.
    ends = np.array([0.0, reference.total, reference.total * (1 + 1e-12)])
    np.testing.assert_array_equal(wide.find(ends), reference.find(ends))


def test_wide_sum_tree_probabilities_match_a_plain_prefix_sum_search():
    """Against the most direct reference: leaf i covers [sum(p[:i]), sum(p[:i+1])) of a cumsum."""
    rng = np.random.default_rng(7)
    priorities = rng.random(1000)
    priorities[::7] = 0.0
    tree = WideSumTree(1000, fan_out=8)  # 4 levels: the walk through several inner levels
    tree.update(np.arange(1000), priorities)
    values = rng.random(5000) * priorities.sum()
    expected = np.searchsorted(np.cumsum(priorities), values, side="right")
    np.testing.assert_array_equal(tree.find(values), expected)


def test_one_compiled_call_samples_with_weights_and_sets_priorities_from_td_errors():
    """The learner's two calls per update (``sample_weighted``, ``update_errors``) give what the
    formulas give step by step: the same leaves, their importance weights, the errors' priorities."""
    rng = np.random.default_rng(3)
    one, steps = WideSumTree(5000), WideSumTree(5000)
    priorities = rng.random(3000) + 0.01
    for tree in (one, steps):
        tree.update(np.arange(3000), priorities)
    for beta in (0.4, 1.0):
        draws_one, draws_steps = np.random.default_rng(9), np.random.default_rng(9)
        leaves, weights = one.sample_weighted(64, draws_one, 3000, beta)
        expected = steps.sample(64, draws_steps)
        np.testing.assert_array_equal(leaves, expected)
        assert weights.dtype == np.float32
        np.testing.assert_allclose(weights, importance_weights(steps[expected] / steps.total, 3000, beta), rtol=1e-6)
        errors = (rng.normal(size=64) * 3).astype(np.float32)
        largest = one.update_errors(leaves, errors, 0.6, 1e-6)
        steps.update(expected, priority(errors, 0.6, 1e-6))
        np.testing.assert_allclose(one[np.arange(5000)], steps[np.arange(5000)], rtol=1e-12)
        assert largest == pytest.approx(priority(errors, 0.6, 1e-6).max(), rel=1e-12)
        assert one.total == pytest.approx(steps.total, rel=1e-12)
    with pytest.raises(IndexError):
        one.update_errors(np.array([-1]), np.array([1.0], np.float32), 0.6, 1e-6)
    with pytest.raises(ValueError, match="2 TD errors for 1 leaves"):
        one.update_errors(np.array([0]), np.array([1.0, 2.0], np.float32), 0.6, 1e-6)
    with pytest.raises(ValueError, match="all zero"):
        WideSumTree(8).sample_weighted(4, rng, 8, 0.4)
