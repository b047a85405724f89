"""The home page and the health check."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.campaigns import selectors
from portal.community.selectors import announcement_list_published
from portal.core.redis import get_redis
from portal.core.strictjson import StrictJsonResponse
from portal.livestats.services import is_boss_fight

log = logging.getLogger(__name__)


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    running = selectors.campaign_list_running()
    context = {
        # Boss fights first: they are what volunteers come for.
        "campaigns": sorted(running, key=lambda campaign: not is_boss_fight(campaign)),
        "totals": selectors.community_totals(),
        "announcements": announcement_list_published(),
    }
    return render(request, "core/home.html", context)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        log.exception("health check: database unreachable")
        return False


def _redis_ok() -> bool:
    try:
        return bool(get_redis().ping())
    except Exception:
        log.exception("health check: redis unreachable")
        return False


@never_cache
@require_safe
def healthz(request: HttpRequest) -> StrictJsonResponse:
    """{"ok", "database", "redis"}: 200 when everything answers, 503 otherwise (for load balancers)."""
    database, redis = _database_ok(), _redis_ok()
    ok = database and redis
    return StrictJsonResponse({"ok": ok, "database": database, "redis": redis}, status=200 if ok else 503)
