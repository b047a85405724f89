"""The spool keeps every unacked chunk on disk, in order, bounded, across restarts."""

from __future__ import annotations

import threading

import pytest

from client_app.spool import Spool, spool_key


def test_chunks_come_back_in_creation_order_until_acked(tmp_path):
    spool = Spool(tmp_path)
    for i in range(5):
        assert spool.add(f"s-{i}", b"frame %d" % i)
    assert spool.pending() == [f"s-{i}" for i in range(5)]
    assert spool.read("s-3") == b"frame 3"
    assert spool.ack("s-1") and spool.ack("s-3")
    assert not spool.ack("s-3")
    assert spool.pending() == ["s-0", "s-2", "s-4"]
    assert spool.read("s-1") is None
    assert len(spool) == 3


def test_adding_the_same_id_twice_keeps_one_copy(tmp_path):
    spool = Spool(tmp_path)
    spool.add("a", b"1")
    spool.add("a", b"1")
    assert spool.pending() == ["a"]
    assert len(list(tmp_path.iterdir())) == 1


def test_a_new_process_finds_what_an_old_one_left_in_order(tmp_path):
    old = Spool(tmp_path)
    for i in range(12):  # past 10, so names must sort numerically
        old.add(f"old:{i}", bytes([i]) * 100)  # ':' is fine in ids, never in file names
    old.ack("old:0")
    old.close()

    new = Spool(tmp_path)
    assert new.pending() == [f"old:{i}" for i in range(1, 12)]
    assert new.read("old:7") == bytes([7]) * 100
    new.add("new-0", b"x")
    assert new.pending()[-1] == "new-0"
    assert Spool(tmp_path).pending()[-1] == "new-0"


def test_writes_are_atomic_and_leftover_temp_files_are_ignored(tmp_path):
    spool = Spool(tmp_path)
    spool.add("done", b"complete frame")
    assert not list(tmp_path.glob("*.tmp"))
    # A process killed mid-write leaves only a temp file: it must never be resent as a chunk.
    (tmp_path / "000000000099-deadbeef.chunk.tmp").write_bytes(b"half-")
    reopened = Spool(tmp_path)
    assert reopened.pending() == ["done"]
    assert reopened.read("done") == b"complete frame"
    assert not list(tmp_path.glob("*.tmp"))


def test_a_full_spool_makes_the_producer_wait_until_an_ack(tmp_path):
    spool = Spool(tmp_path, max_chunks=2)
    spool.add("a", b"1")
    spool.add("b", b"2")
    assert not spool.add("c", b"3", timeout=0.05)

    added = threading.Event()
    producer = threading.Thread(target=lambda: spool.add("c", b"3") and added.set())
    producer.start()
    assert not added.wait(0.2)
    spool.ack("a")
    assert added.wait(5)
    producer.join(5)
    assert spool.pending() == ["b", "c"]


def test_the_byte_bound_still_takes_one_large_chunk(tmp_path):
    spool = Spool(tmp_path, max_bytes=10)
    assert spool.add("big", b"x" * 100)  # alone in the spool: taken, or it would wait forever
    assert not spool.add("next", b"y", timeout=0.01)


class _SignallingCondition(threading.Condition):
    """A condition that sets ``waiting`` when a thread starts waiting on it: the event to wait for,
    instead of sleeping and hoping the producer got there."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_close_releases_a_waiting_producer(tmp_path):
    spool = Spool(tmp_path, max_chunks=1)
    spool.add("a", b"1")
    spool._cond = cond = _SignallingCondition()  # tells when the producer waits for room
    result = []
    producer = threading.Thread(target=lambda: result.append(spool.add("b", b"2")))
    producer.start()
    assert cond.waiting.wait(5)
    spool.close()
    producer.join(5)
    assert result == [False]
    assert Spool(tmp_path).pending() == ["a"]


def test_invalid_ids_are_refused(tmp_path):
    with pytest.raises(ValueError):
        Spool(tmp_path).add("no spaces allowed", b"")


def test_spool_key_is_safe_as_a_directory_name():
    assert spool_key("cartpole-demo", "abc123") == "cartpole-demo-abc123"
    assert "/" not in spool_key("../evil", "x/y") and ":" not in spool_key("a:b", "c")
