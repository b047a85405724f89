"""Beat tasks of live stats: a tick every 2 s (snapshots + pushes), thinning every hour."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from portal.campaigns.models import Campaign
from portal.livestats import services


@shared_task(name="portal.livestats.tasks.stats_tick", ignore_result=True)
def stats_tick() -> None:
    close_old_connections()
    services.stats_tick()
    close_old_connections()


@shared_task(name="portal.livestats.tasks.thin_snapshots", ignore_result=True)
def thin_snapshots() -> None:
    close_old_connections()
    for campaign in Campaign.objects.public():
        services.snapshots_thin(campaign=campaign)
    close_old_connections()
