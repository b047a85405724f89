from __future__ import annotations

import pytest
import redis

from portal.core import redis as core_redis

pytestmark = pytest.mark.django_db


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True, "redis": True}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_reports_redis_down_with_503(client, monkeypatch):
    # A Redis that nobody listens on: the real client, pointed at a closed port.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(core_redis, "_sync_client", dead)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False, "database": True, "redis": False}
