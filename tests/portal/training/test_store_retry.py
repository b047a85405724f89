"""The learner's store waits out a locked database instead of crashing the learner.

Another connection holds SQLite's write lock for longer than the store's connection waits on its own
(its busy timeout is made short here, as a busy platform makes the 30 s one run out); the store
retries with a bounded backoff and publishes once the lock is released.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from django.db import connection

from portal.campaigns.models import ModelVersion
from portal.training.store import CampaignStore
from tests.portal.conftest import model_bytes

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's file lock ('database is locked')"),
]


@pytest.fixture
def short_busy_timeout():
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("timeout")
    connection.close()
    options["timeout"] = 0.2
    yield
    connection.close()
    options["timeout"] = saved


def test_the_store_retries_a_locked_database_and_publishes_once_it_is_free(cartpole_campaign, short_busy_timeout):
    locker = sqlite3.connect(connection.settings_dict["NAME"], timeout=5, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # what a long write by the web server or beat looks like
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
