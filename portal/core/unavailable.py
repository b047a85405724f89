"""A request that needs Redis or the database while one is down gets a 503 that says so, not a 500.

Most pages already carry on without Redis (they show the last known figures, tests/portal/core/
test_redis_down.py), but some requests cannot: a login or signup counts its attempts in Django's
cache (allauth's rate limits), which lives in Redis, and every page that writes needs the database.
Such a request raises a connection error from deep inside a view; this middleware answers it with
"briefly unavailable, try again" (HTML, or JSON under /api/) and a ``Retry-After``, and logs one
warning line instead of a traceback. Other exceptions go on to Django's 500 handling.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
_DATABASE_DOWN = (DbOperationalError, DbInterfaceError)


def _part_down(exception: Exception) -> str | None:
    if isinstance(exception, _REDIS_DOWN):
        return "redis"
    if isinstance(exception, _DATABASE_DOWN):
        return "database"
    return None


class ServiceUnavailableMiddleware(MiddlewareMixin):
    """503 with ``Retry-After`` for a view that failed because Redis or the database is unreachable."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        part = _part_down(exception)
        if part is None:
            return None
        log.warning("%s %s: %s unreachable (%s); answered 503", request.method, request.path, part, exception)
        message = f"SoulsAI's {part} is briefly unreachable; please try again in a minute."
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"error": message}, status=503)
        else:
            html = render_to_string("503.html", {"message": message})
            response = HttpResponse(html, status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
