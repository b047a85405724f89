"""Cut a stream of env steps into Chunks: sequences of at most ``chunk_steps`` steps of one episode.

Pure bookkeeping, no I/O. A chunk holds T steps and T+1 observations (the one each step started
from, plus the one after the last step), so a chunk ends exactly where the next one starts and the
learner can compute n-step targets without next observations being sent twice per step.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import numpy as np

from client_app.protocol import MAX_CHUNK_STEPS, Chunk
from client_app.spaces import SpaceSpec


def new_session_id() -> str:
    """A random tag for one client process: chunk ids are ``<session>-<seq>``, unique across runs."""
    return secrets.token_hex(6)


class Chunker:
    """Accumulates steps; ``step`` returns a finished Chunk when one is complete, else None.

    A chunk is finished when it holds ``chunk_steps`` steps or when its episode ends (then it carries
    terminated/truncated and the episode's return and length). ``flush`` finishes a partial chunk
    early, e.g. when the policy changes, so a chunk never mixes two model versions.
    """

    def __init__(
        self,
        *,
        chunk_steps: int,
        observation_space: SpaceSpec,
        session: str | None = None,
        n_actions: int | None = None,
    ):
        if not 1 <= chunk_steps <= MAX_CHUNK_STEPS:
            raise ValueError(f"chunk_steps must lie in [1, {MAX_CHUNK_STEPS}], got {chunk_steps}")
        if observation_space["type"] != "box":
            raise ValueError("only box observation spaces are supported")
        self.chunk_steps = chunk_steps
        self.session = session or new_session_id()
        self.obs_shape = tuple(observation_space["shape"])
        self.obs_dtype = np.dtype(observation_space["dtype"])
        self._obs = np.zeros((chunk_steps + 1, *self.obs_shape), dtype=self.obs_dtype)
        self._actions = np.zeros(chunk_steps, dtype=np.int64)
        self._rewards = np.zeros(chunk_steps, dtype=np.float32)
        self._logp = np.zeros(chunk_steps, dtype=np.float32)
        self._has_logp = True  # every step of the current chunk came with a log-probability
        # Action masks, once the env reports any: a step without one allows every action.
        self.n_actions = n_actions
        self._masks = np.ones((chunk_steps + 1, n_actions), dtype=bool) if n_actions else None
        self._has_masks = False
        self._t = 0  # steps in the current chunk
        self._model_version = 0
        self._in_episode = False
        self.guided = False  # the current episode is played by a guided campaign's guide
        self._episode_return = 0.0
        self._episode_length = 0
        self.seq = 0  # chunks made so far

    @property
    def steps_buffered(self) -> int:
        return self._t

    def _set_mask(self, row: int, mask: np.ndarray | None) -> None:
        if self._masks is None:
            if mask is None:
                return
            raise ValueError("pass n_actions to the Chunker to record action masks")
        if mask is None:
            self._masks[row] = True
        else:
            self._masks[row] = mask
            self._has_masks = True

    def start_episode(self, obs: Any, mask: np.ndarray | None = None, *, guided: bool = False) -> None:
        """Begin an episode at its first observation (a partial chunk of the last one is dropped);
        ``guided``: a guided campaign's guide plays it (its chunks say so)."""
        self.guided = guided
        self._obs[0] = np.asarray(obs, dtype=self.obs_dtype).reshape(self.obs_shape)
        self._has_masks = False
        self._set_mask(0, mask)
        self._has_logp = True
        self._t = 0
        self._in_episode = True
        self._episode_return = 0.0
        self._episode_length = 0

    def step(
        self,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        *,
        model_version: int,
        mask: np.ndarray | None = None,
        logp: float | None = None,
        outcome: dict[str, Any] | None = None,
    ) -> Chunk | None:
        """Record one step taken from the last observation; return the chunk it completes, if any.

        ``mask`` is the action mask at ``next_obs``, ``logp`` the log-probability of ``action``
        under the policy that chose it, ``outcome`` a boss fight's result on its last step.
        """
        if not self._in_episode:
            raise RuntimeError("call start_episode(obs) before step()")
        if self._t and model_version != self._model_version:
            raise RuntimeError("flush() the chunk before playing a new model version")
        t = self._t
        self._model_version = model_version
        self._actions[t] = action
        self._rewards[t] = reward
        self._obs[t + 1] = np.asarray(next_obs, dtype=self.obs_dtype).reshape(self.obs_shape)
        self._set_mask(t + 1, mask)
        if logp is None:
            self._has_logp = False
        else:
            self._logp[t] = logp
        self._t = t + 1
        self._episode_return += float(reward)
        self._episode_length += 1
        if terminated or truncated:
            chunk = self._emit(terminated=bool(terminated), truncated=bool(truncated), outcome=outcome)
            self._in_episode = False
            return chunk
        if self._t == self.chunk_steps:
            return self._emit()
        return None

    def flush(self) -> Chunk | None:
        """Finish the current partial chunk now (None if it holds no step); the episode goes on."""
        return self._emit() if self._t else None

    def _emit(
        self, *, terminated: bool = False, truncated: bool = False, outcome: dict[str, Any] | None = None
    ) -> Chunk:
        t = self._t
        done = terminated or truncated
        chunk = Chunk(
            id=f"{self.session}-{self.seq}",
            made=int(time.time()),  # the relay refuses chunks older than it remembers ids
            model_version=self._model_version,
            obs=self._obs[: t + 1].copy(),
            actions=self._actions[:t].copy(),
            rewards=self._rewards[:t].copy(),
            terminated=terminated,
            truncated=truncated,
            episode_return=self._episode_return if done else None,
            episode_length=self._episode_length if done else None,
            masks=self._masks[: t + 1].copy() if self._has_masks else None,
            logp=self._logp[:t].copy() if self._has_logp else None,
            outcome=outcome if done else None,
            guided=self.guided,
        )
        self.seq += 1
        # The next chunk of this episode starts from the observation this one ended on.
        self._obs[0] = self._obs[t]
        if self._masks is not None:
            self._masks[0] = self._masks[t]
        self._has_logp = True
        self._t = 0
        return chunk
