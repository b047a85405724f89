"""Volunteers, teams and credit in the JSON API (docs/api.md), and the API's OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from portal.core.strictjson import StrictJsonResponse
from portal.leaderboards.api import period_error
from portal.leaderboards.selectors import PERIODS
from portal.volunteers import selectors

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "core" / "openapi.json"


@require_safe
def volunteer_detail(request: HttpRequest, username: str) -> StrictJsonResponse:
    user = selectors.volunteer_get_public(username=username)
    if user is None:
        raise Http404("No such volunteer.")
    return StrictJsonResponse(selectors.volunteer_summary(user=user))


@require_safe
def team_board(request: HttpRequest) -> StrictJsonResponse:
    period = request.GET.get("period", "all")
    if period not in PERIODS:
        return period_error(period)
    return StrictJsonResponse({"period": period, "entries": selectors.team_board(period=period)})


@require_safe
def team_detail(request: HttpRequest, slug: str) -> StrictJsonResponse:
    team = selectors.team_get_public(slug=slug)
    if team is None:
        raise Http404("No such team.")
    return StrictJsonResponse(selectors.team_summary(team=team))


@require_safe
def credit_export(request: HttpRequest) -> StrictJsonResponse:
    return StrictJsonResponse(selectors.credit_export())


@require_safe
def openapi_schema(request: HttpRequest) -> HttpResponse:
    """The public API's OpenAPI 3.1 schema (hand-kept; tests check it against the URLconf and the server)."""
    return HttpResponse(OPENAPI_PATH.read_bytes(), content_type="application/json")
