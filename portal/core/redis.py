"""The portal's Redis connections (the key layout is ``trainer.keys``, shared with the learner; the
relay's store scripts are ``portal.relay.store`` and ``portal.relay.evaluation``)."""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_sync_client: redis.Redis | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def get_redis() -> redis.Redis:
    """The process's synchronous client (thread-safe: redis-py pools connections)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
    return _sync_client


def get_async_redis() -> aioredis.Redis:
    """An asyncio client bound to the running event loop (one per loop: connections are loop-bound)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
        _async_clients[loop] = client
    return client


# One PUBLISH per notice reaches every ASGI process (portal/relay/fanout.py).
NOTICES_CHANNEL = "soulsai:notices"

