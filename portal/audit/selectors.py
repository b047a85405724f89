"""Reading the staff audit log."""

from __future__ import annotations

from django.core.paginator import Page, Paginator

from portal.audit.models import AuditEntry

PAGE_SIZE = 100


def audit_page(*, number: str | int | None) -> Page:
    """One page of the log, newest first (a page number that is not one gives the nearest page)."""
    return Paginator(AuditEntry.objects.select_related("actor"), PAGE_SIZE).get_page(number)
