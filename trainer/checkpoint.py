"""The checkpoint format: what a checkpoint's learner state holds, and its one migration.

A checkpoint is a published model version that also carries the learner state. Its weights are the
model file clients download (``client_app.policy.save_model``); its state is ``torch.save`` of::

    {"format": 2, "algorithm": "dqn" | "ppo", "config": {...}, "agent": <agent.state_dict()>,
     "stream_covered": "<ms>-<seq>"}

``stream_covered`` is the newest experience-stream entry the agent state has ingested: entries up to
it are in the checkpoint, so a learner resuming from it ingests only the held entries after it
(``trainer.stream``). Checkpoints written before it was added cover no entry ("0-0"). Format 1 (DQN only, before PPO) was ``{"dqn": ..., "samples_total": ...}`` plus its format number, and
still loads: ``state_load`` migrates it to format 2. Only the server's own files are ever read, and
never with pickle (``weights_only=True``). See docs/trainer.md, "Publication and checkpoints".
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

from client_app.policy import Policy, PolicyNetworkSpec, QNetworkSpec
from trainer.config import AlgorithmConfig
from trainer.stream import START, StreamPosition

STATE_FORMAT = 2


@dataclass(frozen=True)
class LearnerState:
    """What a checkpoint's learner state gives back: the agent's part, and the stream entries it covers."""

    agent: dict[str, Any]
    stream_covered: StreamPosition = START


def state_dump(
    *,
    algorithm: str,
    config: AlgorithmConfig,
    agent_state: dict[str, Any],
    stream_covered: StreamPosition = START,
) -> bytes:
    """The learner state of a checkpoint, in the current format."""
    buffer = io.BytesIO()
    torch.save(
        {
            "format": STATE_FORMAT,
            "algorithm": algorithm,
            "config": config.to_dict(),
            "agent": agent_state,
            "stream_covered": str(stream_covered),
        },
        buffer,
    )
    return buffer.getvalue()


def _migrate_1_to_2(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1 held DQN's part and the sample count at the top level."""
    return {
        "format": 2,
        "algorithm": "dqn",
        "agent": {"dqn": state["dqn"], "samples_total": state["samples_total"]},
    }


def state_load(data: bytes, *, algorithm: str) -> LearnerState:
    """A checkpoint's learner state, for a campaign that runs ``algorithm``.

    Raises ValueError for an unknown format or another algorithm's state (and whatever ``torch.load``
    raises for a damaged file), so that the learner falls back to an older checkpoint.
    """
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if state.get("format") == 1 and algorithm == "dqn":
        state = _migrate_1_to_2(state)
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown learner state format {state.get('format')!r}")
    if state.get("algorithm") != algorithm:
        raise ValueError(f"it is a {state.get('algorithm')} checkpoint, the campaign runs {algorithm}")
    return LearnerState(agent=state["agent"], stream_covered=StreamPosition.parse(state.get("stream_covered", "0-0")))


def weights_load(data: bytes, *, spec: QNetworkSpec | PolicyNetworkSpec) -> Policy:
    """A checkpoint's published weights; raises ValueError when their architecture is not ``spec`` or a
    weight is not finite (``Policy`` refuses those), so that resume falls back to an older checkpoint."""
    policy = Policy.from_bytes(data)
    if policy.spec != spec:
        raise ValueError(f"its architecture {policy.spec} is not the campaign's {spec}")
    return policy
