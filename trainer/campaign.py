"""What the learner is given: the campaign it trains and the store it publishes to and resumes from.

The learner owns this interface; the portal implements it with the ORM (``portal.training.store``),
and a learner on its own machine could implement it over HTTP. Plain Python: nothing here imports
Django, the portal or PyTorch, so the portal builds these values without loading the learner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict


@dataclass(frozen=True)
class CampaignSpec:
    """One campaign as its learner sees it, read once when the learner starts."""

    campaign_id: int
    algorithm: str  # "dqn" or "ppo" (trainer.agents.agent_for)
    env_id: str  # picks the per-environment defaults of trainer.config
    hyperparams: dict[str, Any]  # the campaign's overrides of those defaults
    observation_space: dict[str, Any]  # space specs as the campaign declares them (client_app.spaces)
    action_space: dict[str, Any]
    chunk_steps: int  # steps per chunk the clients send
    # The highest version ever published for the campaign (its current one, or a later one that a
    # learner published before dying): the learner's next version is one more, never a reused number.
    model_version: int


class PublishedModel(TypedDict):
    """What clients are told of a published version (docs/protocol.md, "model")."""

    version: int
    url: str
    sha256: str


class Checkpoint(NamedTuple):
    """A checkpoint's two files: the published weights (safetensors) and the learner state (torch.save)."""

    version: int
    weights: bytes
    state: bytes


class LearnerStore(Protocol):
    """Where the learner reads its campaign and checkpoints, and publishes its models."""

    def campaign(self, campaign_id: int) -> CampaignSpec:
        """The campaign to train, as it is now."""
        ...

    def checkpoint_versions(self, campaign_id: int) -> list[int]:
        """Versions that carry a learner state, newest first."""
        ...

    def checkpoint_read(self, campaign_id: int, version: int) -> Checkpoint:
        """One checkpoint's files; raises OSError when they are gone."""
        ...

    def model_publish(
        self,
        campaign_id: int,
        *,
        version: int,
        weights: bytes,
        state: bytes | None,
        is_checkpoint: bool,
        samples_total: int,
        updates_total: int,
    ) -> PublishedModel:
        """Store a new version, make it the campaign's current one, and tell its clients."""
        ...
