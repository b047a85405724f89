"""Template filters of the community's pages: announcements' light markup, rendered safely."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from portal.community import markup

register = template.Library()


@register.filter
def announcement(text: str) -> SafeString:
    """{{ item.body|announcement }}: paragraphs, **bold**, *emphasis* and http(s) links; the rest escaped."""
    return markup.render(text)
