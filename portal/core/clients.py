"""Who is on the other end of a connection: its address, its origin, and how many connections it holds.

- ``client_address(scope)``: the client's address. The peer's own address, unless the peer is one
  of ``SOULSAI_TRUSTED_PROXIES``; then the nearest address in ``X-Forwarded-For`` (or ``X-Real-IP``)
  that is not itself a trusted proxy. ``ClientAddressMiddleware`` writes it into every HTTP and
  websocket scope, so Django's ``REMOTE_ADDR`` (and with it allauth's and every other per-address
  rate limit) and the consumers all read this one answer. uvicorn's own proxy-header handling is off
  (``portal.core.processes.uvicorn_argv``): it would trust loopback's headers by default.
- ``origin_checked(app, required=...)``: a websocket's ``Origin`` must name one of the site's hosts
  (``ALLOWED_HOSTS`` or ``CSRF_TRUSTED_ORIGINS``); otherwise the handshake is refused (HTTP 403).
- ``Seats``: the live connections a websocket counts against its address and its machine token,
  shared by every ASGI process through Redis. Each seat is a member of a sorted set scored by its
  expiry; a process refreshes its seats every third of ``SOULSAI_WS_SEAT_SECONDS`` and frees them on
  disconnect, so the seats of a process that died expire by themselves and a client that reconnects
  is let in again at the latest one lease later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache
from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings

from portal.core.redis import get_async_redis

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_HOPS_READ = 16  # X-Forwarded-For entries looked at, from the right: a bounded walk
UNKNOWN_ADDRESS = "unknown"  # a peer without an address (a unix socket): counted as one address


# -- the client's address --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    """``SOULSAI_TRUSTED_PROXIES`` as networks (settings refuses entries that are not addresses)."""
    return _networks(tuple(settings.SOULSAI_TRUSTED_PROXIES))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as peers and proxies write it (``a.b.c.d``, ``a.b.c.d:port``, ``v6``, ``[v6]:port``)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen on a dual-stack socket (::ffff:a.b.c.d) is the IPv4 client.
    return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip


def _trusted(ip, proxies: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in proxies)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name]
    return ",".join(values) if values else None


def client_address(scope: dict[str, Any]) -> str:
    """The address of the client behind an HTTP or websocket scope (see the module's docstring)."""
    peer = scope.get("client")
    ip = _ip(peer[0]) if peer and peer[0] else None
    if ip is None:
        return UNKNOWN_ADDRESS
    proxies = trusted_proxies()
    if not _trusted(ip, proxies):
        return str(ip)
    forwarded = _header(scope, b"x-forwarded-for")
    hops = (
        forwarded.rsplit(",", FORWARDED_HOPS_READ)[::-1][:FORWARDED_HOPS_READ]
        if forwarded
        else [_header(scope, b"x-real-ip") or ""]
    )
    for hop in hops:
        hop_ip = _ip(hop)
        if hop_ip is None:
            break  # a garbled entry: nothing left of it can be believed; the last trusted hop answers
        ip = hop_ip
        if not _trusted(ip, proxies):
            break
    return str(ip)


def scope_address(scope: dict[str, Any]) -> str:
    """The client's address of a scope that went through ClientAddressMiddleware."""
    client = scope.get("client")
    return client[0] if client and client[0] else UNKNOWN_ADDRESS


def address_bucket(address: str) -> str:
    """What connection caps count per: an IPv4 address, or an IPv6 address's /64 (one subscriber's)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


class ClientAddressMiddleware:
    """Puts ``client_address(scope)`` into ``scope["client"]`` of every HTTP and websocket scope."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client") or (None, 0)
            address = client_address(scope)
            if address != (peer[0] or UNKNOWN_ADDRESS):
                scope = {**scope, "client": (address, 0), "peer": peer}
        return await self.app(scope, receive, send)


# -- the origin of a websocket ---------------------------------------------------------------------


def allowed_origins() -> list[str]:
    """The site's own hosts, as Channels' AllowedHostsOriginValidator has them, and its trusted origins."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]  # what Django itself allows then
    return hosts + list(settings.CSRF_TRUSTED_ORIGINS)


class _SiteOriginValidator(OriginValidator):
    def __init__(self, application, *, required: bool):
        super().__init__(application, allowed_origins())
        self.required = required

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return not self.required
        return self.validate_origin(parsed_origin)


def origin_checked(app, *, required: bool):
    """``app`` behind an Origin check: a present ``Origin`` must be one of the site's
    (``allowed_origins``); an absent one is refused only when ``required`` (browsers always send
    one; the desktop client sends none). A refusal denies the handshake (HTTP 403)."""
    return _SiteOriginValidator(app, required=required)


# -- live connections per address and per token ---------------------------------------------------

# KEYS[1]: the sorted set of live seats (member: seat id, score: expiry in ms, Redis's clock).
# ARGV: seat id, lease in ms, limit. Returns 1 if the seat was taken, 0 if the set is full.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1]: a sorted set of seats; ARGV: lease in ms, a seat id held there. Extends the seat's lease
# (adding it back if the set was lost: the connection is still live).
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

def send_unless_gone(
    send: Callable[[dict[str, Any]], Awaitable[None]], gone: Callable[[], None]
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """An ASGI ``send`` for a websocket consumer to which a peer that has left is no error.

    uvicorn raises ClientDisconnected, an OSError, on a send to a socket the peer closed or reset;
    escaping the consumer, it ends it without its disconnect, and the seats it holds would be renewed
    for the life of the process. Instead the send is dropped and ``gone()`` is called (the consumer
    marks itself closing; its disconnect follows)."""

    async def guarded(message: dict[str, Any]) -> None:
        try:
            await send(message)
        except OSError:
            gone()

    return guarded


SEATS_PREFIX = "soulsai:seats:"
REFRESH_BATCH = 500  # seats refreshed per pipeline


def seats_key(kind: str, subject: str | int) -> str:
    """The sorted set of live connections of one kind (``browser:addr``, ``client:addr``, ``client:token``)."""
    return f"{SEATS_PREFIX}{kind}:{subject}"


def _lease_ms() -> int:
    return max(1000, int(settings.SOULSAI_WS_SEAT_SECONDS * 1000))


class _Registry:
    """This process's (event loop's) live seats, and the task that keeps their leases."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], None] = {}
        self.task: asyncio.Task | None = None

    def add(self, key: str, seat: str) -> None:
        self.held[(key, seat)] = None
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._refresh_forever())

    def discard(self, key: str, seat: str) -> None:
        self.held.pop((key, seat), None)

    async def _refresh_forever(self) -> None:
        while self.held:
            await asyncio.sleep(_lease_ms() / 3000)
            pairs = list(self.held)
            client = get_async_redis()
            for i in range(0, len(pairs), REFRESH_BATCH):
                batch = pairs[i : i + REFRESH_BATCH]
                # One round trip per batch; one key per script call, so a Redis Cluster serves it too.
                pipe = client.pipeline(transaction=False)
                for key, seat in batch:
                    pipe.eval(_REFRESH, 1, key, _lease_ms(), seat)
                try:
                    await pipe.execute()
                    # A seat released while its refresh was on the way must not stay behind as a ghost.
                    gone = [(key, seat) for key, seat in batch if (key, seat) not in self.held]
                    if gone:
                        pipe = client.pipeline(transaction=False)
                        for key, seat in gone:
                            pipe.zrem(key, seat)
                        await pipe.execute()
                except Exception:  # Redis away: the seats expire, which only lets more in; try again later
                    log.warning("could not refresh %d websocket seats", len(batch), exc_info=True)


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = _Registry()
    return registry


class Seats:
    """The seats one websocket holds: ``take`` one per cap it is counted against, ``release`` them all
    when it closes (idempotent). A limit of 0 or less means no cap: nothing is counted."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.keys: list[str] = []

    async def take(self, key: str, limit: int) -> bool:
        if limit <= 0:
            return True
        taken = await get_async_redis().eval(_TAKE, 1, key, self.id, _lease_ms(), limit)
        if taken:
            self.keys.append(key)
            _registry().add(key, self.id)
        return bool(taken)

    async def release(self) -> None:
        keys, self.keys = self.keys, []
        if not keys:
            return
        registry = _registry()
        for key in keys:
            registry.discard(key, self.id)
        pipe = get_async_redis().pipeline(transaction=False)
        for key in keys:
            pipe.zrem(key, self.id)
        await pipe.execute()
