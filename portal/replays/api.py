"""The replays of a campaign's evaluation episodes in the public JSON API (docs/api.md, "Replays")."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.views.decorators.http import require_safe

from portal.campaigns.models import Campaign
from portal.campaigns.selectors import campaign_get_public
from portal.core.strictjson import StrictJsonResponse
from portal.replays import selectors


def _campaign_or_404(slug: str) -> Campaign:
    campaign = campaign_get_public(slug=slug)  # drafts are never public, as in the campaigns' API
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


@require_safe
def replay_list(request: HttpRequest, slug: str) -> StrictJsonResponse:
    """Every kept replay, newest first (``?version=N``: that checkpoint's), and the first win."""
    campaign = _campaign_or_404(slug)
    version = request.GET.get("version")
    if version is not None and not (version.isdigit() and len(version) <= 9):
        return StrictJsonResponse({"error": "version must be a checkpoint version number"}, status=400)
    replays = selectors.replay_list(campaign=campaign, version=int(version) if version else None)
    first_win = selectors.first_win_get(campaign=campaign)
    return StrictJsonResponse(
        {
            "replays": [selectors.replay_summary(r, request) for r in replays],
            "first_win": selectors.replay_summary(first_win, request) if first_win else None,
        }
    )


@require_safe
def replay_detail(request: HttpRequest, slug: str, replay_id: int) -> StrictJsonResponse:
    """One replay with its frames."""
    replay = selectors.replay_get(campaign=_campaign_or_404(slug), replay_id=replay_id)
    if replay is None:
        raise Http404(
            "No such replay (older replays are pruned: the best, the latest and one per checkpoint stay)."
        )
    try:
        return StrictJsonResponse(selectors.replay_detail(replay, request))
    except FileNotFoundError:
        raise Http404("This replay's trace is missing from storage.") from None
