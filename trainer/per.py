"""Prioritized experience replay, the maths only (Schaul et al. 2016, "Prioritized Experience Replay").

The proportional variant: transition i is sampled with probability P(i) = p_i / sum_k p_k, where
p_i = (|delta_i| + eps)^alpha is its last TD error's priority, and its update is weighted by the
importance-sampling weight w_i = (N * P(i))^-beta / max_j w_j, with beta annealed to 1 over training.
``trainer.replay.PrioritizedReplayBuffer`` holds the transitions; this module holds the sum-tree and
the formulas, in NumPy, vectorised over a minibatch.

Two sum-trees answer the same questions: ``SumTree``, the textbook binary tree (Schaul et al. 2016,
appendix B.2.1), kept as the plain reference; and ``WideSumTree``, 64 children per node, which the
replay buffer uses: a 200,000-slot buffer is 3 levels deep instead of 18, and a minibatch's sampling
and priority update are each one call of a loop compiled by Numba (docs/trainer.md, "The learner keeps
up"). Both map every prefix sum to the same leaf, up to rounding at a boundary between two leaves.
"""

from __future__ import annotations

import numpy as np

from trainer.compiled import compiled


class SumTree:
    """A binary tree over ``capacity`` leaf priorities whose every node holds the sum of its children.

    Stored as one flat array of 2 * L nodes (L = ``capacity`` rounded up to a power of two): the root
    is node 1, node k has children 2k and 2k + 1, leaf i is node L + i. Updating a leaf and finding the
    leaf under a prefix sum both walk one root-to-leaf path, log2(L) steps, done for a whole batch of
    leaves at once (one NumPy operation per tree level, not per leaf).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.leaves = 1 << max(0, (capacity - 1).bit_length())
        self.depth = self.leaves.bit_length() - 1
        self.nodes = np.zeros(2 * self.leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def __getitem__(self, index: np.ndarray | int) -> np.ndarray:
        """The priorities of leaves ``index``."""
        return self.nodes[self.leaves + np.asarray(index)]

    def update(self, index: np.ndarray | int, priority: np.ndarray | float) -> None:
        """Set the priorities of leaves ``index`` (a repeated leaf takes the last of its values)."""
        node = self.leaves + np.atleast_1d(np.asarray(index, dtype=np.int64))
        self.nodes[node] = np.broadcast_to(np.asarray(priority, dtype=np.float64), node.shape)
        # Recompute each ancestor from its two children (rather than adding deltas): repeated leaves
        # and repeated parents are harmless, and no rounding error accumulates over millions of updates.
        for _ in range(self.depth):
            node = node >> 1
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """For each value v in [0, total), the leaf i with sum(p[:i]) <= v < sum(p[:i+1])."""
        value = np.array(prefix, dtype=np.float64)
        node = np.ones(value.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.nodes[left]
            # Never descend into an empty subtree: rounding may put v a hair past the last priority.
            go_right = (value >= left_sum) & (self.nodes[left + 1] > 0)
            value -= np.where(go_right, left_sum, 0.0)
            node = left + go_right
        return node - self.leaves

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``batch_size`` leaves drawn proportionally to priority, one from each of as many equal
        segments of [0, total) (stratified: a batch covers the whole distribution, Schaul et al. B.2.1)."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum-tree whose priorities are all zero")
        segment = total / batch_size
        return self.find((np.arange(batch_size) + rng.random(batch_size)) * segment)


@compiled
def _wide_update(tree: np.ndarray, offsets: np.ndarray, fan_out: int, index: np.ndarray, priority: np.ndarray) -> None:
    """``WideSumTree.update``'s loop, compiled: each leaf set in order (a repeated leaf keeps its last
    value), then every ancestor of each recomputed from all its children (no deltas: repeated nodes are
    harmless and no rounding error builds up)."""
    depth = offsets.shape[0] - 2
    for i in range(index.shape[0]):
        tree[offsets[depth] + index[i]] = priority[i]
    for i in range(index.shape[0]):
        node = index[i]
        for level in range(depth, 0, -1):
            node //= fan_out
            first = offsets[level] + node * fan_out
            total = 0.0
            for c in range(fan_out):
                total += tree[first + c]
            tree[offsets[level - 1] + node] = total


@compiled
def _wide_find(tree: np.ndarray, offsets: np.ndarray, fan_out: int, values: np.ndarray) -> np.ndarray:
    """``WideSumTree.find``'s walk, compiled: per value, per level, a running sum along the F siblings."""
    depth = offsets.shape[0] - 2
    leaves = np.empty(values.shape[0], dtype=np.int64)
    for i in range(values.shape[0]):
        value = values[i]
        node = 0
        for level in range(1, depth + 1):
            first = offsets[level] + node * fan_out
            end = 0.0
            for c in range(fan_out):
                end += tree[first + c]
            # A v rounded a hair past the siblings' sum is brought back below it, onto the last child
            # with mass: never descend into an empty subtree.
            value = min(value, np.nextafter(end, 0.0))
            # The first child whose range ends past v (an empty child ends where its left sibling does,
            # so it is passed over, as the binary tree passes over empty subtrees).
            end = 0.0
            child = 0
            for c in range(fan_out):
                end += tree[first + c]
                if end > value:
                    child = c
                    break
            value -= end - tree[first + child]
            node = node * fan_out + child
        leaves[i] = node
    return leaves


@compiled
def _wide_sample(
    tree: np.ndarray, offsets: np.ndarray, fan_out: int, values: np.ndarray, size: int, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """``_wide_find`` and the leaves' ``importance_weights`` (float32) in one call."""
    leaves = _wide_find(tree, offsets, fan_out, values)
    first_leaf = offsets[offsets.shape[0] - 2]
    total = tree[0]
    weights = np.empty(leaves.shape[0], dtype=np.float64)
    largest = 0.0
    for i in range(leaves.shape[0]):
        weights[i] = (size * (tree[first_leaf + leaves[i]] / total)) ** -beta
        largest = max(largest, weights[i])
    return leaves, (weights / largest).astype(np.float32)


@compiled
def _wide_set_errors(
    tree: np.ndarray, offsets: np.ndarray, fan_out: int, index: np.ndarray, td_errors: np.ndarray, alpha: float, eps: float
) -> float:
    """``priority`` of each TD error into ``_wide_update``; returns the largest priority set."""
    priorities = np.empty(index.shape[0], dtype=np.float64)
    largest = 0.0
    for i in range(index.shape[0]):
        priorities[i] = (abs(np.float64(td_errors[i])) + eps) ** alpha
        largest = max(largest, priorities[i])
    _wide_update(tree, offsets, fan_out, index, priorities)
    return largest


class WideSumTree:
    """A sum-tree with ``fan_out`` children per node: the same answers as ``SumTree``, fewer levels.

    Level 0 is the root, level ``depth`` the F^depth leaves (F = ``fan_out``; ``capacity`` rounded
    up to a power of F); node k of level l has children F*k .. F*k + F - 1 of level l + 1. The levels
    are consecutive slices of one flat array (``levels[l]`` views level l), walked by two compiled
    loops (``_wide_update``, ``_wide_find``; Numba): a batch's sampling or priority update is one call
    of some 10-20 µs instead of about 20 NumPy operations (0.15-0.5 ms on the learner's path, where the
    update's matrices keep evicting the tree from the caches).
    """

    def __init__(self, capacity: int, fan_out: int = 64):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if fan_out < 2:
            raise ValueError("fan_out must be at least 2")
        self.capacity = capacity
        self.fan_out = fan_out
        self.depth = 1
        while fan_out**self.depth < capacity:
            self.depth += 1
        sizes = [fan_out**level for level in range(self.depth + 1)]
        # offsets[l]: where level l starts in the flat array; offsets[-1] its length.
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.tree = np.zeros(int(self.offsets[-1]), dtype=np.float64)
        # levels[l] holds F^l sums; levels[0] is the root, levels[-1] the leaves' priorities.
        self.levels = [self.tree[self.offsets[level] : self.offsets[level + 1]] for level in range(self.depth + 1)]

    @property
    def total(self) -> float:
        return float(self.tree[0])

    def __getitem__(self, index: np.ndarray | int) -> np.ndarray:
        """The priorities of leaves ``index``."""
        return self.levels[-1][np.asarray(index)]

    def update(self, index: np.ndarray | int, priority: np.ndarray | float) -> None:
        """Set the priorities of leaves ``index`` (a repeated leaf takes the last of its values)."""
        node = self._leaves(index)
        values = np.ascontiguousarray(np.broadcast_to(np.asarray(priority, dtype=np.float64), node.shape))
        _wide_update(self.tree, self.offsets, self.fan_out, node, values)

    def _leaves(self, index: np.ndarray | int) -> np.ndarray:
        node = np.ascontiguousarray(np.atleast_1d(np.asarray(index, dtype=np.int64)))
        if node.size and (node.min() < 0 or node.max() >= self.levels[-1].shape[0]):
            raise IndexError(f"leaf index out of range 0..{self.levels[-1].shape[0] - 1}")
        return node

    def update_errors(self, index: np.ndarray, td_errors: np.ndarray, alpha: float, eps: float) -> float:
        """``update(index, priority(td_errors, alpha, eps))`` in one compiled call; returns the largest
        of those priorities (0 for none)."""
        node = self._leaves(index)
        errors = np.ascontiguousarray(td_errors)
        if errors.shape != node.shape:
            raise ValueError(f"{errors.shape[0] if errors.ndim else 1} TD errors for {node.shape[0]} leaves")
        return _wide_set_errors(self.tree, self.offsets, self.fan_out, node, errors, float(alpha), float(eps))

    def sample_weighted(
        self, batch_size: int, rng: np.random.Generator, size: int, beta: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``sample`` (the same leaves for the same random numbers) and the leaves' importance-sampling
        weights, ``importance_weights(P(i), size, beta)`` as float32, in one compiled call."""
        values = self._stratified(batch_size, rng)
        return _wide_sample(self.tree, self.offsets, self.fan_out, values, size, float(beta))

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """For each value v in [0, total), the leaf i with sum(p[:i]) <= v < sum(p[:i+1])."""
        values = np.ascontiguousarray(np.atleast_1d(np.asarray(prefix, dtype=np.float64)))
        return _wide_find(self.tree, self.offsets, self.fan_out, values).reshape(np.shape(prefix))

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``batch_size`` leaves drawn proportionally to priority, stratified as ``SumTree.sample``
        (the same random numbers pick the same leaves)."""
        return self.find(self._stratified(batch_size, rng))

    def _stratified(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """One prefix sum drawn in each of ``batch_size`` equal segments of [0, total)."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum-tree whose priorities are all zero")
        segment = total / batch_size
        return (np.arange(batch_size) + rng.random(batch_size)) * segment


def priority(td_errors: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    """p_i = (|delta_i| + eps)^alpha: eps keeps every transition sampleable, alpha = 0 is uniform."""
    return (np.abs(np.asarray(td_errors, dtype=np.float64)) + eps) ** alpha


def importance_weights(probabilities: np.ndarray, size: int, beta: float) -> np.ndarray:
    """w_i = (N * P(i))^-beta, divided by the largest w in the batch so weights only scale updates down.

    Normalising by the batch's maximum (as Dopamine and rlpyt do) rather than the buffer's needs no
    min-tree; either way the largest weight is at most 1.
    """
    weights = (size * np.asarray(probabilities, dtype=np.float64)) ** -beta
    return weights / weights.max()


def beta_at(updates: int, beta0: float, anneal_updates: int) -> float:
    """beta rises linearly from beta0 to 1 over ``anneal_updates`` updates: full correction by the end,
    when the bias matters most (Schaul et al. 2016, section 3.4)."""
    if anneal_updates <= 0:
        return 1.0
    return beta0 + min(1.0, updates / anneal_updates) * (1.0 - beta0)
