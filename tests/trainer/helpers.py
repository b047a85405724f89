"""Synthetic but valid experience for the trainer's tests."""

from __future__ import annotations

import itertools

import numpy as np

from client_app.protocol import Chunk, pack

_ids = itertools.count()


def make_chunk(
    steps: int,
    *,
    obs_dim: int = 4,
    n_actions: int = 2,
    terminated: bool = False,
    truncated: bool = False,
    seed: int = 0,
) -> Chunk:
    """A CartPole-shaped chunk of random but well-formed steps."""
    rng = np.random.default_rng(seed)
    done = terminated or truncated
    return Chunk(
        id=f"test-{next(_ids)}",
        model_version=0,
        obs=rng.normal(size=(steps + 1, obs_dim)).astype(np.float32),
        actions=rng.integers(0, n_actions, size=steps).astype(np.int64),
        rewards=np.ones(steps, dtype=np.float32),
        terminated=terminated,
        truncated=truncated,
        episode_return=float(steps) if done else None,
        episode_length=steps if done else None,
    )


def push_chunks(client, stream: str, count: int, steps: int, *, seed: int = 0, machine: int = 1) -> int:
    """XADD ``count`` chunks the way the relay stores them (sent by token id ``machine``); returns the
    number of steps pushed."""
    for i in range(count):
        chunk = make_chunk(steps, terminated=(i % 3 == 2), seed=seed + i)
        client.xadd(stream, {"c": pack(chunk.to_message()), "m": str(machine)})
    return count * steps
