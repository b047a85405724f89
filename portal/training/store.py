"""The learner's store on the ORM: ``trainer.campaign.LearnerStore`` for the portal's database and media."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from portal.campaigns.models import Campaign, ModelVersion
from portal.campaigns.services import model_publish
from trainer.campaign import CampaignSpec, Checkpoint, PublishedModel


def _read_file(field: Any) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


class CampaignStore:
    """Campaigns and their model versions as the learner reads and writes them."""

    def campaign(self, campaign_id: int) -> CampaignSpec:
        campaign = Campaign.objects.get(pk=campaign_id)
        newest = campaign.model_versions.aggregate(v=Max("version"))["v"] or 0
        return CampaignSpec(
            campaign_id=campaign.id,
            algorithm=campaign.algorithm,
            env_id=campaign.env_id,
            hyperparams=campaign.hyperparams,
            observation_space=campaign.observation_space,
            action_space=campaign.action_space,
            chunk_steps=campaign.chunk_steps,
            # A version published after the campaign's row was last updated still counts.
            model_version=max(campaign.model_version, newest),
        )

    def checkpoint_versions(self, campaign_id: int) -> list[int]:
        return list(
            ModelVersion.objects.filter(campaign_id=campaign_id)
            .exclude(state="")
            .order_by("-version")
            .values_list("version", flat=True)
        )

    def checkpoint_read(self, campaign_id: int, version: int) -> Checkpoint:
        model = ModelVersion.objects.filter(campaign_id=campaign_id, version=version).exclude(state="").first()
        if model is None:
            raise FileNotFoundError(f"campaign {campaign_id} has no checkpoint v{version}")
        return Checkpoint(version=version, weights=_read_file(model.weights), state=_read_file(model.state))

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
        model = model_publish(
            campaign_id=campaign_id,
            version=version,
            weights=weights,
            state=state,
            is_checkpoint=is_checkpoint,
            samples_total=samples_total,
            updates_total=updates_total,
        )
        return PublishedModel(**model.notice())
