"""Every protocol message's wire form: the bytes the relay and older clients always exchanged."""

from __future__ import annotations

import pytest

from client_app import protocol as P

NOTICE = P.ModelNotice(version=3, url="/campaigns/c/models/3.safetensors", sha256="ab" * 32)
WELCOME = P.Welcome(
    campaign={"slug": "c", "name": "C", "env_id": "CartPole-v1", "env_kwargs": {}, "algorithm": "dqn",
              "status": "running", "url": "/campaigns/c/"},
    observation_space={"type": "box", "shape": [4], "dtype": "float32", "low": [None] * 4, "high": [None] * 4},
    action_space={"type": "discrete", "n": 2, "start": 0},
    chunk_steps=64,
    model=NOTICE.to_map(),
    machine={"name": "rig", "prefix": "abc123def456"},
)

# Each typed message and the map the code built by hand before it had one (same keys, same order).
CASES = [
    (P.Hello(client_version="0.4.0", machine="rig"),
     {"type": "hello", "protocol": 1, "client_version": "0.4.0", "machine": "rig", "env_id": None}),
    (WELCOME,
     {"type": "welcome", "protocol": 1, "campaign": WELCOME.campaign,
      "spaces": {"observation": WELCOME.observation_space, "action": WELCOME.action_space},
      "chunk_steps": 64, "model": {"version": 3, "url": NOTICE.url, "sha256": NOTICE.sha256},
      "machine": {"name": "rig", "prefix": "abc123def456"}}),
    (P.Ack(id="s-1", duplicate=False, model_version=3, wait_ms=25),
     {"type": "ack", "id": "s-1", "duplicate": False, "model_version": 3, "wait_ms": 25}),
    (P.Ack(id="s-2", duplicate=True, model_version=3, wait_ms=0, evaluate=NOTICE),
     {"type": "ack", "id": "s-2", "duplicate": True, "model_version": 3, "wait_ms": 0,
      "evaluate": {"version": 3, "url": NOTICE.url, "sha256": NOTICE.sha256}}),
    (P.Ack(id="s-e1", duplicate=False),
     {"type": "ack", "id": "s-e1", "duplicate": False, "model_version": 0, "wait_ms": 0}),
    (P.Reject(id=None, code=P.R_MALFORMED, message="bad", wait_ms=0),
     {"type": "reject", "id": None, "code": "malformed", "message": "bad", "wait_ms": 0}),
    (NOTICE, {"type": "model", "version": 3, "url": NOTICE.url, "sha256": NOTICE.sha256}),
    (P.Status(status="paused", message="paused by its admins"),
     {"type": "status", "status": "paused", "message": "paused by its admins"}),
    (P.Error(code=P.R_AUTH, message="revoked"), {"type": "error", "code": "auth_failed", "message": "revoked"}),
]


@pytest.mark.parametrize(("message", "by_hand"), CASES, ids=[type(m).__name__ for m, _ in CASES])
def test_a_message_packs_to_the_same_bytes_and_reads_back_equal(message, by_hand):
    assert P.pack(message.to_wire()) == P.pack(by_hand)
    assert type(message).from_wire(P.unpack(P.pack(by_hand))) == message


def test_readers_of_server_messages_are_as_lenient_as_the_client_always_was():
    ack = P.Ack.from_wire({"type": "ack", "id": 7, "evaluate": {"version": "x"}})
    assert (ack.id, ack.duplicate, ack.model_version, ack.wait_ms, ack.evaluate) == (None, False, 0, 0, None)
    assert P.Reject.from_wire({"type": "reject", "code": "shape", "wait_ms": -5}).wait_ms == 0
    assert P.ModelNotice.from_wire({"version": "4", "url": "/m", "sha256": "AB"}).sha256 == "ab"
    assert P.Hello.from_wire({"type": "hello", "client_version": "9" * 40}).client_version == "9" * 32
    with pytest.raises(P.ProtocolError):
        P.Welcome.from_wire({"type": "welcome", "campaign": {}})


def test_a_hostile_server_cannot_park_the_client_for_days():
    """The relay asks for seconds at most; wait_ms of 1e15 would hold a volunteer's client for 31,000 years."""
    from client_app.protocol.codes import MAX_WAIT_MS

    assert MAX_WAIT_MS == 60_000
    assert P.Ack.from_wire({"type": "ack", "id": "c", "wait_ms": 10**15}).wait_ms == MAX_WAIT_MS
    assert P.Reject.from_wire({"type": "reject", "code": "rate_limited", "wait_ms": 10**15}).wait_ms == MAX_WAIT_MS
    assert P.Ack.from_wire({"type": "ack", "id": "c", "wait_ms": 1500}).wait_ms == 1500
