"""Running observation statistics (Welford / Chan et al.), published with each model.

The learner updates them from every observation it ingests and normalises its training batches with
them; clients apply the published copy (``client_app.policy.ObsNorm``) before their network, so both
sides feed the network the same inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from client_app.policy import ObsNorm


class RunningMeanStd:
    """Mean and variance over every observation seen, merged batch by batch (parallel algorithm)."""

    def __init__(self, dim: int, *, clip: float = 10.0, epsilon: float = 1e-8):
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 0.0
        self.clip = clip
        self.epsilon = epsilon
        self._published: ObsNorm | None = None  # the frozen copy, until the statistics change

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, self.mean.shape[0])
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        # Chan, Golub & LeVeque (1979): combine two (count, mean, M2) summaries exactly.
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total
        self._published = None

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var + self.epsilon)

    def published(self) -> ObsNorm:
        """The frozen copy that travels with a model (float32)."""
        if self._published is None:
            # Kept until the statistics change: the learner normalises two batches per update with it.
            self._published = ObsNorm(
                self.mean.astype(np.float32), self.std.astype(np.float32), float(self.clip)
            )
        return self._published

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return self.published()(obs)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean, var = np.asarray(state["mean"], np.float64), np.asarray(state["var"], np.float64)
        if mean.shape != self.mean.shape or var.shape != self.var.shape:
            raise ValueError(f"normaliser of {mean.shape} features, expected {self.mean.shape}")
        self.mean, self.var, self.count = mean, var, float(state["count"])
        self._published = None
