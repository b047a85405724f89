"""``/metrics`` on every ASGI process: Prometheus's text format, for allowed networks only.

It is served by an ASGI wrapper in front of everything else (``portal.asgi``), not by a Django view:

- **The real peer decides.** The check reads the socket's peer address before
  ``ClientAddressMiddleware`` replaces it with a forwarded one, and a request that carries any
  forwarding header (``X-Forwarded-For``, ``X-Real-IP``, ``Forwarded``) is refused whoever sends it: a
  proxy in front (nginx on loopback, which the default allow list would let in) must never turn
  /metrics public. Prometheus scrapes each web process directly, on its own port.
- **No Django in the way.** Django would answer 400 to a scrape whose Host is not in ALLOWED_HOSTS
  (Prometheus sends the target's address) and redirect it to HTTPS in production.

``SOULSAI_METRICS_ALLOW`` (comma-separated CIDRs, loopback by default) is the allow list; a refused
request gets 403. With ``PROMETHEUS_MULTIPROC_DIR`` set (several processes on a host, each writing
its metrics to memory-mapped files there) the endpoint sums every process's files, so any one process
answers for all; without it, this process's own registry answers.
"""

from __future__ import annotations

import asyncio
import glob
import ipaddress
import os
import re
from functools import lru_cache

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

PATH = "/metrics"
FORWARDING_HEADERS = frozenset({b"x-forwarded-for", b"x-real-ip", b"forwarded"})
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@lru_cache(maxsize=4)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def metrics_allowed(scope: dict) -> bool:
    """Whether the raw ASGI scope's peer may read the metrics (see the module's docstring)."""
    if any(name in FORWARDING_HEADERS for name, _ in scope.get("headers", ())):
        return False
    peer = scope.get("client")
    if not peer or not peer[0]:
        return False  # a unix socket: no address to check, so no
    try:
        ip = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(
        ip.version == net.version and ip in net for net in _networks(tuple(settings.SOULSAI_METRICS_ALLOW))
    )


class _LiveProcessesCollector(MultiProcessCollector):
    """MultiProcessCollector that first drops the live gauges of this host's dead processes.

    A "live" gauge (connected clients, frames in flight) of a process that was killed would otherwise
    be summed forever; its counters and histograms stay, so that totals never go back.
    """

    def collect(self):
        for path in glob.glob(os.path.join(self._path, "gauge_live*.db")):
            match = _LIVE_FILE.search(os.path.basename(path))
            if match and not _alive(int(match.group(1))):
                mark_process_dead(int(match.group(1)), self._path)
        return super().collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@lru_cache(maxsize=1)
def registry() -> CollectorRegistry:
    """What a scrape of this process reads: every process's metrics (multi-process mode) or this
    process's, plus the scrape-time figures (``portal.metrics.scrape``)."""
    from portal.metrics import relay  # noqa: F401  (defines the relay's metrics in this process)
    from portal.metrics.scrape import PlatformCollector

    path = multiprocess_dir()
    if path:
        chosen = CollectorRegistry()
        _LiveProcessesCollector(chosen, path=path)
    else:
        chosen = REGISTRY
    chosen.register(PlatformCollector())
    return chosen


def render() -> bytes:
    """The exposition text; run in a thread (it queries the database and Redis)."""
    from django.db import connections

    try:
        return generate_latest(registry())
    finally:
        connections.close_all()  # this thread's connections: a scrape leaves none behind


async def _answer(send, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MetricsEndpoint:
    """ASGI wrapper: answers ``/metrics`` (allowed peers only), passes everything else to ``app``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/") != PATH:
            return await self.app(scope, receive, send)
        if not metrics_allowed(scope):
            await _answer(
                send, 403, b"metrics are served to SOULSAI_METRICS_ALLOW only, and not through a proxy\n"
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"GET only\n")
            return
        body = await asyncio.to_thread(render)
        await _answer(send, 200, body if scope["method"] == "GET" else b"", CONTENT_TYPE_LATEST.encode())
