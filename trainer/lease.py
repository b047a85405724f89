"""One learner per campaign: a Redis lease, taken with SET NX and renewed and released compare-and-set.

A learner that cannot renew its lease may have been replaced (its loop hung past the lease, a network
split): it stops at once and publishes nothing (``LeaseLost``). See docs/trainer.md, "Lease and restarts".
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator

import redis

_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLost(Exception):
    """Another learner may own the campaign now: stop at once, publish nothing."""


class Lease:
    """A Redis lease: held while the key holds our token, renewed and released compare-and-set."""

    def __init__(self, client: redis.Redis, key: str, seconds: float):
        self.client = client
        self.key = key
        self.seconds = seconds
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.seconds * 1000))

    def acquire(self) -> bool:
        """Take the lease unless another learner holds it."""
        return bool(self.client.set(self.key, self.token, nx=True, px=self._ttl_ms))

    def renew(self) -> bool:
        """Extend the lease by its full length; False when it is no longer ours."""
        return bool(self._renew(keys=[self.key], args=[self.token, self._ttl_ms]))

    def release(self) -> None:
        """Give the lease up, unless it already belongs to another learner."""
        self._release(keys=[self.key], args=[self.token])

    @contextlib.contextmanager
    def kept_alive(self, limit_s: float) -> Iterator[None]:
        """Renew the lease from a thread while the block starts the learner up (networks built, a
        checkpoint read from the storage server: seconds on a loaded host, past a short lease), for at
        most ``limit_s``; raises LeaseLost after the block if a renewal failed or the limit passed.

        The block must publish and acknowledge nothing: a learner stuck in it keeps the lease for at
        most ``limit_s``, then its successor takes over."""
        done = threading.Event()
        lost = threading.Event()

        def renew_until_done() -> None:
            waited = 0.0
            every = max(0.05, self.seconds / 3)
            while not done.wait(every):
                waited += every
                try:
                    ok = waited < limit_s and self.renew()
                except redis.RedisError:
                    ok = False
                if not ok:
                    lost.set()
                    return

        thread = threading.Thread(target=renew_until_done, name="lease-keepalive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
        if lost.is_set() or not self.renew():
            raise LeaseLost
