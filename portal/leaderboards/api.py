"""Leaderboards in the JSON API (docs/api.md): per campaign and across all campaigns."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.views.decorators.http import require_safe

from portal.campaigns.selectors import campaign_get_public
from portal.core.strictjson import StrictJsonResponse
from portal.leaderboards.selectors import PERIODS, leaderboard_get


def period_error(period: str) -> StrictJsonResponse:
    """The 400 answer to an unknown ``period`` query parameter (leaderboards and team boards)."""
    allowed = "|".join(PERIODS)
    return StrictJsonResponse({"error": f"unknown period {period!r}: use period={allowed}"}, status=400)


@require_safe
def campaign_leaderboard(request: HttpRequest, slug: str) -> StrictJsonResponse:
    campaign = campaign_get_public(slug=slug)
    if campaign is None:
        raise Http404("No such campaign.")
    period = request.GET.get("period", "all")
    if period not in PERIODS:
        return period_error(period)
    return StrictJsonResponse(leaderboard_get(campaign=campaign, period=period))


@require_safe
def global_leaderboard(request: HttpRequest) -> StrictJsonResponse:
    period = request.GET.get("period", "all")
    if period not in PERIODS:
        return period_error(period)
    return StrictJsonResponse(leaderboard_get(campaign=None, period=period))
