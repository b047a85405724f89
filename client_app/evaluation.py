"""Evaluation on the client: play the checkpoints the server asks for greedily, and report each episode.

The learner judges a checkpoint by greedy episodes that volunteers play for it (docs/protocol.md,
"Evaluation episodes"). This module is the client's whole share of that:

- the queue of episodes owed: the ack of a chunk that ends an episode may carry ``evaluate`` (a model
  notice); each one asks for one more greedy episode of that version (``Evaluations.asked``, called
  in the connection thread);
- fetching and holding that exact version, with its own ``ModelFetcher`` so the checkpoint never
  replaces the model the client trains with;
- playing it greedily between two training episodes (``next_episode`` and ``EvalEpisode``): argmax
  over the allowed actions, nothing of it chunked or trained on;
- recording the episode's trace for its replay on the portal (``EvalEpisode.record``);
- building the ``eval`` message (``client_app.protocol.EvalResult``, the trace with it) and putting it
  in the spool, which sends it like a chunk and resends it until the relay acks it
  (``Evaluations.store``).

Shared with the server: the ack's ``evaluate`` field and the ``eval`` message, both defined in
``client_app.protocol`` (``Ack``, ``ModelNotice``, ``EvalResult``). On the server,
``trainer/evaluation.py`` (the server-side owner) asks for a checkpoint's episodes and rolls their
results up into its figures; ``portal/relay/evaluation.py`` and the store scripts of
``portal/relay/store.py`` hand the episodes out, one per ack, and record each result exactly once
(the client resends it until acked).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from client_app import iudex
from client_app.fetcher import ModelFetcher
from client_app.policy import Policy
from client_app.protocol import EvalResult, pack
from client_app.protocol.trace import MAX_TRACE_BYTES, fight_frame

if TYPE_CHECKING:
    from client_app.protocol import ModelNotice

log = logging.getLogger(__name__)


@dataclass
class EvalEpisode:
    """One greedy episode of a checkpoint the server asked to evaluate, as it is played.

    It records the episode's trace as it goes (``client_app.protocol.trace``): in an Iudex fight a
    row of FIGHT_FIELDS per step, from the observation dict the encoder leaves in the step's info;
    elsewhere the action and the reward. The trace rides the ``eval`` message, so the spool keeps it
    across a disconnect like the result itself.
    """

    policy: Policy
    episode_return: float = 0.0
    length: int = 0
    rows: list[tuple[float, ...]] = field(default_factory=list)

    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> int:
        """The greedy action: no exploration, so the figure judges the network itself."""
        return self.policy.greedy(obs, mask)

    def record(self, reward: float, *, action: int | None = None, info: Mapping[str, Any] | None = None) -> None:
        """One step: its reward counts in the return; with its ``action``, a row of the trace."""
        self.episode_return += float(reward)
        self.length += 1
        if action is None:
            return
        raw = (info or {}).get(iudex.RAW_OBS)
        state = fight_frame(raw) if raw is not None else ()
        self.rows.append((*state, float(action), float(reward)))

    def trace(self) -> np.ndarray | None:
        """The recorded trace, float32 (length, columns); None when a step went unrecorded, the rows
        differ in kind, or it would pass the protocol's size cap (the result goes without it)."""
        if len(self.rows) != self.length or not self.rows or len({len(r) for r in self.rows}) != 1:
            return None
        trace = np.asarray(self.rows, dtype=np.float32)
        if trace.nbytes > MAX_TRACE_BYTES:
            log.info("evaluation trace of %d steps is over %d bytes: sent without it", self.length, MAX_TRACE_BYTES)
            return None
        return trace


class Evaluations:
    """The evaluation episodes the server asked this client for, from request to spooled result.

    ``spool(item_id, frame)`` puts a frame in the run's spool, waiting for room (the runner's
    ``_spool``): a result dropped for a full spool would leave the learner waiting for its evaluation
    until the server's time-out.
    """

    def __init__(self, *, server_url: str, token: str, spool: Callable[[str, bytes], bool]):
        self.fetcher = ModelFetcher(server_url=server_url, token=token)
        self._spool = spool
        self._lock = threading.Lock()
        self._owed: dict[int, int] = {}  # model version -> greedy episodes the server asked for
        self._policy: Policy | None = None  # the latest checkpoint downloaded for evaluation
        self.episodes = 0  # evaluation episodes reported in this run

    def start(self) -> None:
        self.fetcher.start()

    def stop(self) -> None:
        self.fetcher.stop()

    def asked(self, notice: ModelNotice) -> None:
        """(connection thread) The server asks for one more greedy episode of ``notice``'s version."""
        with self._lock:
            self._owed[notice.version] = self._owed.get(notice.version, 0) + 1
        self.fetcher.request(notice)  # downloaded once per version

    def next_episode(self) -> EvalEpisode | None:
        """(env loop) The checkpoint to play the next episode of greedily, if one is owed and loaded."""
        loaded = self.fetcher.take()
        if loaded is not None:
            self._policy = loaded
        policy = self._policy
        if policy is None:
            return None
        with self._lock:
            for version in [v for v in self._owed if v < policy.version]:
                del self._owed[version]  # superseded before its model arrived
            if self._owed.get(policy.version, 0) <= 0:
                return None
            self._owed[policy.version] -= 1
        return EvalEpisode(policy)

    def store(self, episode: EvalEpisode, outcome: dict | None, *, session: str) -> None:
        """Report a finished episode: its ``eval`` message goes into the spool (waits for room).

        ``session`` is the run's chunk session id: result ids are unique per run like chunk ids,
        which the relay de-duplicates by.
        """
        self.episodes += 1
        result = EvalResult(
            id=f"{session}-e{self.episodes}",
            model_version=episode.policy.version,
            episode_return=episode.episode_return,
            episode_length=episode.length,
            outcome=dict(outcome) if outcome else None,
            made=int(time.time()),
            trace=episode.trace(),
        )
        self._spool(result.id, pack(result.to_wire()))
        log.info(
            "evaluation episode of model v%d: return %.1f in %d steps",
            episode.policy.version,
            episode.episode_return,
            episode.length,
        )
