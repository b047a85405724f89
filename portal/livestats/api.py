"""``GET /api/campaigns/<slug>/stats/``: a campaign's figures over time (docs/api.md)."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest
from django.views.decorators.http import require_safe

from portal.campaigns.selectors import campaign_get_public
from portal.core.strictjson import StrictJsonResponse
from portal.livestats import selectors


@require_safe
def campaign_stats(request: HttpRequest, slug: str) -> StrictJsonResponse:
    campaign = campaign_get_public(slug=slug)
    if campaign is None:
        raise Http404("No such campaign.")
    window = request.GET.get("window", selectors.DEFAULT_WINDOW)
    if window not in selectors.WINDOWS:
        allowed = ", ".join(selectors.WINDOWS)
        return StrictJsonResponse({"error": f"unknown window {window!r}: use one of {allowed}"}, status=400)
    return StrictJsonResponse(
        {
            "slug": campaign.slug,
            "window": window,
            "interval_s": float(settings.SOULSAI_SNAPSHOT_SECONDS),
            "figures": selectors.live_figures(campaign=campaign),
            "points": selectors.stats_series(campaign=campaign, window=window),
        }
    )
