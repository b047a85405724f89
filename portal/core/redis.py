"""The portal's Redis connections (the key layout is ``trainer.keys``, shared with the learner; the
relay's store scripts are ``portal.relay.store`` and ``portal.relay.evaluation``)."""

from __future__ import annotations

import asyncio
import functools
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

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
        if HIREDIS_AVAILABLE:
            pool = client.connection_pool
            pool.connection_class = _packing_in_c(pool.connection_class)
        _async_clients[loop] = client
    return client


class _HiredisPacking:
    """Commands packed in C by hiredis, as redis-py's synchronous connections already do where hiredis
    is installed; its asyncio connections pack every argument in Python, and the relay sends a
    script of 35 arguments per chunk (pack_command was 8% of the relay's samples, bench/relay.py)."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args):  # noqa: ANN002, ANN201  (redis-py's signature)
        return self._packer.pack(*args)


@functools.cache
def _packing_in_c(connection_class: type) -> type:
    """``connection_class`` (TCP, TLS or unix socket, as the URL chose) packing with hiredis."""
    return type(connection_class.__name__, (_HiredisPacking, connection_class), {})


# One PUBLISH per notice reaches every ASGI process (portal/relay/fanout.py).
NOTICES_CHANNEL = "soulsai:notices"
# The newest SIGNED client version the portal offers (set with its signature: downloads.services); the
# relay tells clients older than it at hello, and connected ones by a notice.
CLIENT_RELEASE_KEY = "soulsai:client_release"

