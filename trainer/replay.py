"""Replay buffers of n-step transitions, filled from clients' chunks (``client_app.protocol.Chunk``).

``ReplayBuffer`` samples uniformly; ``PrioritizedReplayBuffer`` proportionally to TD error
(``trainer.per``). ``replay_buffer_for(config, ...)`` builds the one a campaign's config asks for.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from client_app.policy import ObsNorm
from client_app.protocol import Chunk
from trainer.compiled import compiled
from trainer.config import DQNConfig
from trainer.per import WideSumTree


class Batch(NamedTuple):
    """A minibatch of n-step transitions: the target is ``returns + discounts * V(next_obs)``."""

    obs: np.ndarray  # (B, obs_dim) float32
    actions: np.ndarray  # (B,) int64, action indices 0..n_actions-1
    returns: np.ndarray  # (B,) float32, discounted rewards of the m <= n steps after obs
    next_obs: np.ndarray  # (B, obs_dim) float32, the observation m steps later
    discounts: np.ndarray  # (B,) float32, gamma^m, or 0 where the episode terminated within the m steps
    weights: np.ndarray  # (B,) float32, importance-sampling weights of the loss (all 1 when uniform)
    indices: np.ndarray  # (B,) int64, buffer slots, to hand new priorities back
    next_masks: np.ndarray | None = None  # (B, n_actions) bool: actions allowed at next_obs (None: all)
    demo: np.ndarray | None = None  # (B,) bool: the guide's action (the margin loss); None: no guide


def stacked_obs(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """``obs`` and ``next_obs`` (B, d) as one (2B, d) array: a view when they are the two halves of one
    C-contiguous array, as ``ReplayBuffer.sample`` hands them out (the learner then normalises both in
    one call and its networks take them as one matrix, with no copy), else their concatenation."""
    if (
        obs.flags.c_contiguous
        and next_obs.flags.c_contiguous
        and obs.dtype == next_obs.dtype
        and obs.shape == next_obs.shape
        and obs.ndim == 2
        and next_obs.ctypes.data == obs.ctypes.data + obs.nbytes
    ):
        return np.lib.stride_tricks.as_strided(obs, shape=(2 * obs.shape[0], obs.shape[1]))
    return np.concatenate([obs, next_obs])


@compiled
def _gather_normalized(
    obs: np.ndarray,
    next_obs: np.ndarray,
    idx: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    clip: np.float32,
    out: np.ndarray,
) -> None:
    """Rows ``idx`` of ``obs`` then of ``next_obs`` into ``out`` (2B, d), normalised as
    ``ObsNorm.__call__`` does, element by element in float32: clip((x - mean) / std, -clip, clip)."""
    n, d = idx.shape[0], obs.shape[1]
    for half in range(2):
        source = obs if half == 0 else next_obs
        for i in range(n):
            row = idx[i]
            for j in range(d):
                value = (source[row, j] - mean[j]) / std[j]
                out[half * n + i, j] = min(max(value, -clip), clip)


def pinned(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` in page-locked (pinned) host memory, still a NumPy array.

    The learner's networks turn batches into tensors with ``.to(device, non_blocking=True)``: from
    pinned memory that copy to the GPU is asynchronous (a DMA the GPU runs while the host prepares
    the next step); from ordinary pageable memory CUDA first stages it through a pinned buffer of
    its own, synchronously. Needs CUDA; PyTorch's caching host allocator reuses the blocks.
    """
    import torch

    array = np.ascontiguousarray(array)
    out = torch.empty(array.shape, dtype=torch.from_numpy(array[:0]).dtype, pin_memory=True).numpy()
    np.copyto(out, array)
    return out


def n_step_targets(
    rewards: np.ndarray, *, terminated: bool, gamma: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-step parts of a chunk's T transitions: (returns G_t, horizons m_t, discounts).

    m_t = min(n, T - t) steps, G_t = sum_{k<m_t} gamma^k r[t+k], the bootstrap from obs[t + m_t] is
    discounted by gamma^m_t, or by 0 when the episode terminated at the chunk's end within those steps.
    Vectorised: the rewards, padded with n zeros, are viewed as a (T, n) matrix of windows whose dot
    product with (1, gamma, ..., gamma^(n-1)) is G (the padding stands for the steps past the chunk).
    """
    steps = rewards.shape[0]
    padded = np.concatenate([rewards.astype(np.float64), np.zeros(n, dtype=np.float64)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)[:steps]
    returns = windows @ gamma ** np.arange(n, dtype=np.float64)
    horizons = np.minimum(n, steps - np.arange(steps))
    discounts = gamma ** horizons.astype(np.float64)
    if terminated:
        discounts[np.arange(steps) + horizons == steps] = 0.0
    return returns, horizons, discounts


class ReplayBuffer:
    """A NumPy ring buffer of flat float32 n-step transitions; the oldest are overwritten when full.

    Next observations are stored beside observations (twice the memory of a sequence layout, but a
    sample is a few fancy-indexing reads and no episode bookkeeping). ``gamma`` and ``n_step`` are
    the config's: returns are discounted on the way in. ``action_start`` is the action space's
    ``start``: stored actions are indices from 0, as the Q-network's outputs are. With
    ``pin_memory`` (a learner on CUDA) sampled batches are gathered into pinned host memory, so that
    their copy to the GPU does not block (``pinned``); on the CPU they are plain arrays.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        *,
        gamma: float,
        n_step: int,
        action_start: int = 0,
        n_actions: int | None = None,
        pin_memory: bool = False,
    ):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if n_step < 1:
            raise ValueError("n_step must be at least 1")
        self.capacity = capacity
        self.obs_dim = obs_dim
        self.action_start = action_start
        self.gamma = gamma
        self.n_step = n_step
        self.pin_memory = pin_memory
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.returns = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        # Which machine (token id) sent each transition, so that staff can void a machine's data (0:
        # unknown, from a stream entry or a checkpoint without one).
        self.machines = np.zeros(capacity, dtype=np.int64)
        # Whether each transition's action was a guide's (a guided campaign's margin loss), and whether
        # any ever was: batches carry the flags only then.
        self.demo = np.zeros(capacity, dtype=bool)
        self.guided = False
        # The action mask at each next observation, kept once any chunk brought masks (the targets'
        # argmax must not pick an action the game would not allow there).
        self.n_actions = n_actions
        self.next_masks: np.ndarray | None = None
        self.pos = 0  # where the next transition goes
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add_chunk(self, chunk: Chunk, *, machine_id: int = 0, demo: np.ndarray | None = None) -> int:
        """Insert the chunk's T n-step transitions, sent by machine ``machine_id``, and return T.

        Transition t is (obs[t], a[t], G_t, obs[t+m], discount) with m = min(n, T - t): near the end
        of a chunk the horizon shrinks rather than reaching into the episode's next chunk. Every
        m-step target is a valid Bellman target, and m < n there only shortens the horizon (less
        off-policy bias, a little more bootstrapping) for n - 1 of a chunk's T transitions (2 of 128
        with n = 3). Stitching chunks instead would mean holding each episode's last n - 1 steps back
        until its next chunk arrives, keyed by client and episode, across clients that quit, chunks
        that arrive late or twice, and learner restarts: state the learner does not otherwise need.

        Only a *terminated* last step ends the bootstrap: a truncated episode (time limit, a client
        that quit) did not end in the MDP, so the learner still bootstraps from obs[T] (Pardo et al.
        2018, "Time Limits in Reinforcement Learning").
        """
        steps = chunk.steps
        obs = np.asarray(chunk.obs, dtype=np.float32).reshape(steps + 1, -1)
        if obs.shape[1] != self.obs_dim:
            raise ValueError(f"chunk observations have {obs.shape[1]} features, the buffer {self.obs_dim}")
        actions = np.asarray(chunk.actions, dtype=np.int64) - self.action_start
        returns, horizons, discounts = n_step_targets(
            np.asarray(chunk.rewards), terminated=bool(chunk.terminated), gamma=self.gamma, n=self.n_step
        )

        # A chunk longer than the whole buffer keeps only its newest transitions.
        keep = min(steps, self.capacity)
        first = steps - keep
        idx = (self.pos + np.arange(keep)) % self.capacity
        self.obs[idx] = obs[first:steps]
        self.next_obs[idx] = obs[np.arange(first, steps) + horizons[first:]]
        self.actions[idx] = actions[first:]
        self.returns[idx] = returns[first:]
        self.discounts[idx] = discounts[first:]
        self.machines[idx] = machine_id
        if demo is not None:
            self.guided = True
            self.demo[idx] = np.asarray(demo, dtype=bool)[first:]
        else:
            self.demo[idx] = False
        if chunk.masks is not None and self.next_masks is None and self.n_actions:
            self.next_masks = np.ones((self.capacity, self.n_actions), dtype=bool)
        if self.next_masks is not None:
            if chunk.masks is None:
                self.next_masks[idx] = True
            else:
                self.next_masks[idx] = np.asarray(chunk.masks, dtype=bool)[np.arange(first, steps) + horizons[first:]]
        self.pos = (self.pos + keep) % self.capacity
        self.size = min(self.size + keep, self.capacity)
        self._stored(idx)
        return steps

    _ARRAYS = ("obs", "next_obs", "actions", "returns", "discounts", "machines", "demo")

    def void(self, machine_id: int) -> int:
        """Remove every transition machine ``machine_id`` sent; returns how many left the buffer.

        The others are compacted in ring order (oldest first, so the next insert still overwrites the
        oldest), which keeps sampling a plain draw over ``0..size-1``: no mask to consult per batch.
        O(capacity) once per void, which staff do by hand.
        """
        n = self.size
        order = (np.arange(n) + (self.pos if n == self.capacity else 0)) % self.capacity
        keep = order[self.machines[order] != machine_id]
        removed = n - keep.size
        if removed == 0:
            return 0
        priorities = self._priorities(keep)
        for name in self._ARRAYS:
            array = getattr(self, name)
            array[: keep.size] = array[keep]
        if self.next_masks is not None:
            self.next_masks[: keep.size] = self.next_masks[keep]
        self.size, self.pos = keep.size, keep.size % self.capacity
        self._compacted(priorities, n)
        return removed

    def _priorities(self, slots: np.ndarray) -> np.ndarray | None:
        """Hook: the sampling priorities of ``slots`` (None: uniform sampling has none)."""
        return None

    def _compacted(self, priorities: np.ndarray | None, old_size: int) -> None:
        """Hook: slots 0..size-1 now hold the kept transitions (with ``priorities``), the rest none."""

    def state_dict(self) -> dict:
        """The stored transitions as tensors (for a checkpoint that keeps the buffer: weights_only loads them)."""
        import torch

        n = self.size
        state = {name: torch.from_numpy(getattr(self, name)[:n].copy()) for name in self._ARRAYS}
        if self.next_masks is not None:
            state["next_masks"] = torch.from_numpy(self.next_masks[:n].copy())
        # Slots 0..size-1 in ring order: the oldest transition first once the ring has wrapped.
        state.update(pos=self.pos, size=n, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        n, capacity = int(state["size"]), int(state["capacity"])
        if state["obs"].shape[1:] != (self.obs_dim,):
            raise ValueError(f"stored transitions have {tuple(state['obs'].shape[1:])} features, the buffer {self.obs_dim}")
        keep = min(n, self.capacity)
        # Oldest first, so that a smaller buffer keeps the newest ones.
        order = (np.arange(n) + (int(state["pos"]) if n == capacity else 0)) % n
        order = order[n - keep :]
        for name in self._ARRAYS:
            if name in state:  # checkpoints before per-sample machine ids (guide flags) have none: 0 (False)
                getattr(self, name)[:keep] = state[name].numpy()[order]
        if "next_masks" in state and self.n_actions:
            self.next_masks = np.ones((self.capacity, self.n_actions), dtype=bool)
            self.next_masks[:keep] = state["next_masks"].numpy()[order]
        self.size, self.pos = keep, keep % self.capacity
        self.guided = bool(self.demo[:keep].any())
        self._stored(np.arange(keep))

    def _stored(self, idx: np.ndarray) -> None:
        """Hook: slots ``idx`` now hold new transitions."""

    def _batch(self, idx: np.ndarray, weights: np.ndarray, norm: ObsNorm | None = None) -> Batch:
        n = idx.shape[0]
        pair = np.empty((2 * n, self.obs.shape[1]), dtype=self.obs.dtype)
        # One array, obs then next_obs (``stacked_obs``).
        if norm is not None:
            _gather_normalized(self.obs, self.next_obs, idx, norm.mean, norm.std, np.float32(norm.clip), pair)
        else:
            # mode "wrap" takes without a buffered copy (idx is always in range).
            np.take(self.obs, idx, axis=0, out=pair[:n], mode="wrap")
            np.take(self.next_obs, idx, axis=0, out=pair[n:], mode="wrap")
        batch = Batch(
            obs=pair[:n],
            actions=self.actions[idx],
            returns=self.returns[idx],
            next_obs=pair[n:],
            discounts=self.discounts[idx],
            weights=weights.astype(np.float32),
            indices=idx,  # stays on the host: priorities are updated here
            next_masks=self.next_masks[idx] if self.next_masks is not None else None,
            demo=self.demo[idx] if self.guided else None,
        )
        if not self.pin_memory:
            return batch
        batch = batch._replace(
            **{
                name: pinned(value)
                for name, value in batch._asdict().items()
                if name not in ("indices", "obs", "next_obs") and value is not None
            }
        )
        pair = pinned(pair)
        return batch._replace(obs=pair[:n], next_obs=pair[n:])

    def sample(
        self, batch_size: int, rng: np.random.Generator, *, beta: float = 1.0, norm: ObsNorm | None = None
    ) -> Batch:
        """Uniformly sample ``batch_size`` transitions (with replacement); ``beta`` is unused here.
        With ``norm`` the observations come normalised by it (gathered and normalised in one pass)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return self._batch(idx, np.ones(batch_size, dtype=np.float32), norm)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """New TD errors of sampled transitions: nothing to do for uniform sampling."""


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) over the same ring of transitions.

    New transitions get the largest priority seen so far, so each is replayed at least about once
    before its TD error is known; sampled ones get (|delta| + eps)^alpha after their update.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        *,
        gamma: float,
        n_step: int,
        alpha: float,
        eps: float,
        action_start: int = 0,
        n_actions: int | None = None,
        pin_memory: bool = False,
    ):
        super().__init__(
            capacity,
            obs_dim,
            action_start=action_start,
            gamma=gamma,
            n_step=n_step,
            n_actions=n_actions,
            pin_memory=pin_memory,
        )
        self.alpha = alpha
        self.eps = eps
        self.tree = WideSumTree(capacity)
        self.max_priority = 1.0

    def _stored(self, idx: np.ndarray) -> None:
        self.tree.update(idx, self.max_priority)

    def _priorities(self, slots: np.ndarray) -> np.ndarray | None:
        return np.asarray(self.tree[slots], dtype=np.float64).copy()

    def _compacted(self, priorities: np.ndarray | None, old_size: int) -> None:
        kept = self.size
        if kept:
            self.tree.update(np.arange(kept), priorities)
        if old_size > kept:
            self.tree.update(np.arange(kept, old_size), 0.0)  # never sampled until written again

    def sample(
        self, batch_size: int, rng: np.random.Generator, *, beta: float = 1.0, norm: ObsNorm | None = None
    ) -> Batch:
        """Sample proportionally to priority; ``weights`` are the normalised IS weights for ``beta``
        (``importance_weights``, computed with the walk in one compiled call)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx, weights = self.tree.sample_weighted(batch_size, rng, self.size, beta)
        return self._batch(idx, weights, norm)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Each sampled transition's new priority, ``priority(td_error, alpha, eps)``."""
        largest = self.tree.update_errors(indices, td_errors, self.alpha, self.eps)
        self.max_priority = max(self.max_priority, largest)


def replay_buffer_for(
    config: DQNConfig,
    *,
    obs_dim: int,
    action_start: int = 0,
    n_actions: int | None = None,
    pin_memory: bool = False,
) -> ReplayBuffer:
    """The replay buffer a campaign's config asks for: n-step, prioritized or uniform; ``pin_memory``
    for a learner on CUDA (batches in pinned host memory)."""
    common = dict(
        action_start=action_start, gamma=config.gamma, n_step=config.n_step, n_actions=n_actions, pin_memory=pin_memory
    )
    if config.prioritized:
        return PrioritizedReplayBuffer(
            config.buffer_size, obs_dim, alpha=config.per_alpha, eps=config.per_eps, **common
        )
    return ReplayBuffer(config.buffer_size, obs_dim, **common)
