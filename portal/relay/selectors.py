"""The relay's read side: what a connected client is told about its campaign, from the ORM rows.

No database queries here: the token row (with its campaign) is loaded once at connect; these only
shape it into protocol values.
"""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from client_app import protocol as P
from client_app.spaces import normalize_spec
from portal.campaigns.models import Campaign
from portal.machines.models import MachineToken


def welcome_build(
    *, campaign: Campaign, token: MachineToken, status: str, model: P.ModelNotice | None
) -> P.Welcome:
    """The answer to a client's hello: its campaign, the spaces its chunks must fit, the current model."""
    return P.Welcome(
        campaign={
            "slug": campaign.slug,
            "name": campaign.name,
            "env_id": campaign.env_id,
            "env_kwargs": campaign.env_kwargs,
            "algorithm": campaign.algorithm,
            "status": status,
            "url": campaign.get_absolute_url(),
        },
        observation_space=normalize_spec(campaign.observation_space),
        action_space=normalize_spec(campaign.action_space),
        chunk_steps=campaign.chunk_steps,
        model=model.to_map() if model else None,
        machine={"name": token.name, "prefix": token.prefix},
    )


def chunk_schema_for(*, campaign: Campaign) -> P.ChunkSchema:
    """What the campaign's chunks (and evaluation results) must look like: built once per
    connection, kept for its chunks. Its ``bounds`` say what the environment's episodes can be."""
    return P.ChunkSchema.from_spaces(
        observation_space=normalize_spec(campaign.observation_space),
        action_space=normalize_spec(campaign.action_space),
        max_steps=campaign.chunk_steps,
        bounds=P.bounds_for(campaign.env_id, campaign.env_kwargs),
    )


def download_page() -> str:
    """Where a client too old for the server gets the current one."""
    try:
        return reverse("downloads:page")
    except NoReverseMatch:
        return "/download/"
