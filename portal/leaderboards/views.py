"""Leaderboard pages: one per campaign and one across all campaigns, each over three periods."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from portal.campaigns.selectors import campaign_get_public
from portal.leaderboards.selectors import PERIOD_LABELS, PERIODS, leaderboard_get, live_data_available


def _render(request: HttpRequest, campaign) -> HttpResponse:
    period = request.GET.get("period", "all")
    status = 200
    error = None
    if period not in PERIODS:
        error = f"There is no period “{period}”: pick all time, the last 7 days or the last 24 hours."
        period, status = "all", 400
    context = {
        "campaign": campaign,
        "board": leaderboard_get(campaign=campaign, period=period),
        "period": period,
        "periods": PERIOD_LABELS,
        "error": error,
        "live_down": not live_data_available(),
    }
    return render(request, "leaderboards/board.html", context, status=status)


@require_safe
def global_board(request: HttpRequest) -> HttpResponse:
    return _render(request, None)


@require_safe
def campaign_board(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug, include_drafts=request.user.is_staff)
    if campaign is None:
        raise Http404("No such campaign.")
    return _render(request, campaign)
