"""Beat task of the leaderboards: roll up contributions and refresh the cached boards."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from portal.leaderboards import services


@shared_task(name="portal.leaderboards.tasks.refresh_leaderboards", ignore_result=True)
def refresh_leaderboards() -> None:
    close_old_connections()
    services.leaderboards_refresh()
    close_old_connections()
