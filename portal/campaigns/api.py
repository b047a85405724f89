"""The public, read-only JSON API over campaigns and their checkpoints (docs/api.md)."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.views.decorators.http import require_safe

from portal.campaigns import selectors
from portal.campaigns.models import Campaign
from portal.core.strictjson import StrictJsonResponse


def _campaign_or_404(slug: str) -> Campaign:
    campaign = selectors.campaign_get_public(slug=slug)  # drafts are never public, not even to staff
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


@require_safe
def campaign_list(request: HttpRequest) -> StrictJsonResponse:
    campaigns = [selectors.campaign_api_dict(c, request) for c in selectors.campaign_list_public()]
    return StrictJsonResponse({"campaigns": campaigns})


@require_safe
def campaign_detail(request: HttpRequest, slug: str) -> StrictJsonResponse:
    return StrictJsonResponse(selectors.campaign_api_dict(_campaign_or_404(slug), request))


@require_safe
def checkpoint_list(request: HttpRequest, slug: str) -> StrictJsonResponse:
    campaign = _campaign_or_404(slug)
    checkpoints = [
        selectors.checkpoint_api_dict(m, request) for m in selectors.checkpoint_list(campaign=campaign)
    ]
    return StrictJsonResponse({"checkpoints": checkpoints})
