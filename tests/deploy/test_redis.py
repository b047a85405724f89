"""deploy/redis/redis.conf, run by Debian's redis-server: what it promises (append-only, everysec,
noeviction) is what a killed server and a full one do."""

from __future__ import annotations

import os

import pytest
import redis

from harness.redis_server import RedisServer, redis_server_missing, start_redis_server

pytestmark = pytest.mark.own_servers


@pytest.fixture
def server(tmp_path):
    missing = redis_server_missing()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    started: list[RedisServer] = []

    def start(**kwargs) -> RedisServer:
        started.append(start_redis_server(tmp_path / "redis", **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def test_the_file_asks_for_append_only_everysec_and_noeviction(server):
    config = server().client().config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert int(config["maxmemory"]) == 4 * 1024**3
    assert config["save"] == ""
    assert config["protected-mode"] == "yes"


def test_a_killed_server_comes_back_from_its_append_only_file_with_everything_it_acknowledged(server):
    first = server()
    r = first.client()
    r.set("soulsai:test:key", "value")
    r.hset("{c1}:stats", mapping={"samples": 1234, "chunks": 10})
    r.incrby("{c1}:stats:total", 7)
    ids = [r.xadd("{c1}:stream", {"c": os.urandom(1000)}) for _ in range(50)]
    r.xgroup_create("{c1}:stream", "learner", id="0")
    r.xreadgroup("learner", "learner-1", {"{c1}:stream": ">"}, count=20)  # taken, not acked yet
    entries = r.xrange("{c1}:stream")

    first.kill()  # no shutdown, no final write
    second = first.restart()
    try:
        r = second.client()
        assert r.get("soulsai:test:key") == b"value"
        assert r.hgetall("{c1}:stats") == {b"samples": b"1234", b"chunks": b"10"}
        assert r.get("{c1}:stats:total") == b"7"
        assert r.xrange("{c1}:stream") == entries
        assert [e[0] for e in entries] == ids
        # A learner's entries taken but not acked are still pending: its successor claims them.
        assert r.xpending("{c1}:stream", "learner")["pending"] == 20
    finally:
        second.stop()  # the fixture stops the servers it started; this one came from restart()


def test_a_full_server_refuses_writes_and_keeps_everything(server):
    """noeviction, with maxmemory made small: a write past it is refused (the relay answers
    server_error, the client keeps its chunk); nothing already stored is evicted."""
    r = server(extra=("--maxmemory", "4mb")).client()
    written = 0
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for written in range(10_000):  # noqa: B007 - bounded: 4 MiB fills within a few hundred
            r.xadd("{c1}:stream", {"c": os.urandom(20_000)})
    assert written > 0
    assert r.xlen("{c1}:stream") == written
    assert r.info("stats")["evicted_keys"] == 0
