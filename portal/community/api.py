"""GET /api/announcements/: what staff told the community, for the client's window (docs/api.md)."""

from __future__ import annotations

from django.http import HttpRequest
from django.views.decorators.http import require_safe

from portal.community import markup
from portal.community.selectors import announcement_list_published
from portal.core.strictjson import StrictJsonResponse

SHOWN = 5


@require_safe
def announcement_list(request: HttpRequest) -> StrictJsonResponse:
    """The latest published announcements, pinned first: title, plain text, its HTML, when, pinned."""
    items = [
        {
            "title": item.title,
            "text": markup.plain(item.body),
            "html": str(markup.render(item.body)),
            "created": item.created.isoformat(),
            "pinned": item.pinned,
        }
        for item in announcement_list_published(limit=SHOWN)
    ]
    return StrictJsonResponse({"announcements": items})
