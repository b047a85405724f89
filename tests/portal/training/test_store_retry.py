"""The learner's store waits out a locked database instead of crashing the learner.

Another connection holds the lock for longer than the store's connection waits on its own (SQLite's
write lock with a short busy timeout, as a busy platform makes the 30 s one run out; on PostgreSQL an
exclusive table lock with a short ``lock_timeout``): the store retries with a bounded backoff and
publishes once the lock is released.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from django.db import connection

from portal.campaigns.models import ModelVersion
from portal.training.store import CampaignStore
from tests.portal.conftest import model_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_lock_wait():
    """The store's connection gives up on a lock after 0.2 s, raising OperationalError."""
    options = connection.settings_dict["OPTIONS"]
    key, value = ("timeout", 0.2) if connection.vendor == "sqlite" else ("options", "-c lock_timeout=200")
    saved = options.get(key)
    connection.close()
    options[key] = value
    yield
    connection.close()
    if saved is None:
        options.pop(key, None)
    else:
        options[key] = saved


def lock_model_versions():
    """Another connection holding the lock the store needs to publish, as a long write elsewhere does."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        locker = sqlite3.connect(settings["NAME"], timeout=5, check_same_thread=False)
        locker.execute("BEGIN EXCLUSIVE")
        return locker
    import psycopg

    locker = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None, port=settings["PORT"] or None,
    )  # fmt: skip
    locker.execute(f"LOCK TABLE {ModelVersion._meta.db_table} IN ACCESS EXCLUSIVE MODE")
    return locker


def test_the_store_retries_a_locked_database_and_publishes_once_it_is_free(cartpole_campaign, short_lock_wait):
    locker = lock_model_versions()
    released = threading.Timer(1.5, locker.rollback)
    released.start()
    try:
        published = CampaignStore().model_publish(
            cartpole_campaign.id, version=1, weights=model_bytes(1), state=None, is_checkpoint=False,
            samples_total=10, updates_total=5,
        )  # fmt: skip
    finally:
        released.join()
        locker.close()
    assert published["version"] == 1
    assert ModelVersion.objects.filter(campaign=cartpole_campaign, version=1).count() == 1
