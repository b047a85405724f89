"""The hello and the connection's credentials: no welcome for a bad token, protocol or campaign."""

from __future__ import annotations

from hostile import wire
from hostile.registry import REGISTRY, Verdict
from hostile.world import Session


def _handshake(world, *, token="valid", hello=None, status="running", path="/ws/client/", headers=None,
               campaign_fields=None):
    campaign = world.campaign(status="running" if status == "stopped" else status, **(campaign_fields or {}))
    model, raw = world.token(campaign)
    if status == "stopped":  # tokens are made while it runs; a stopped campaign makes none
        world.stop_campaign(campaign)
    if callable(token):
        raw = token(raw)
    elif token != "valid":
        raw = token
    try:
        ws = world.ws_connect(raw, path=path, headers=headers)
    except Exception as exc:  # refused at the HTTP upgrade
        return Verdict(True, False, f"upgrade refused ({type(exc).__name__})"), campaign, model
    s = Session(ws)
    try:
        s.send(hello if hello is not None else wire.hello())
        reply = s.recv() or {}
    finally:
        ws.close()
    welcomed = reply.get("type") == "welcome"
    return Verdict(not welcomed, welcomed, f"answer {reply.get('code') or reply.get('type') or s.close_code}"), campaign, model


def refused_hello(doc, **kw):
    def fn(world):
        return _handshake(world, **kw)[0]

    return doc, fn


CASES = {
    "no_token": refused_hello("no Authorization header", token=None),
    "unknown_token": refused_hello("a well-formed token the server never made", token="sai_000000000000_" + "A" * 32),
    "token_200_chars": refused_hello("a 200-character token", token="x" * 200),
    "basic_scheme": refused_hello("the token under 'Basic' instead of 'Bearer'",
                                  token=None, headers={"Authorization": "Basic Zm9vOmJhcg=="}),
    "token_in_query": refused_hello("the token in the query string instead of the header", token=None,
                                    path="/ws/client/?token=x"),
    "prefix_right_secret_wrong": refused_hello("the real token's prefix with another secret",
                                               token=lambda raw: raw[:-4] + "AAAA"),
    "protocol_2": refused_hello("hello speaking protocol 2", hello=wire.hello(protocol=2)),
    "protocol_str": refused_hello("hello with protocol '1' (a string)", hello=wire.hello(protocol="1")),
    "old_client": refused_hello("a client older than the campaign's minimum version",
                                hello=wire.hello(client_version="0.0.1"),
                                campaign_fields={"min_client_version": "9.0.0"}),
    "hello_not_map": refused_hello("a msgpack list as the first message", hello=wire.raw(["hello"])),
    "hello_text": refused_hello("a JSON text frame as the hello", hello='{"type": "hello", "protocol": 1}'),
    "stopped_campaign": refused_hello("a token of a stopped campaign", status="stopped"),
    "draft_campaign": refused_hello("a token of a campaign never launched", status="draft"),
}

for i, (name, (doc, fn)) in enumerate(CASES.items()):
    REGISTRY.add("handshake", name, f"{doc}: no welcome", fn, quick=i == 0)


def hello_twice(world) -> Verdict:
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        reply = s.answer(wire.hello()) or {}
    again = reply.get("type") == "welcome"
    return Verdict(not again, again, f"second hello answered {reply.get('code') or reply.get('type')}")


REGISTRY.add("handshake", "hello_twice", "a second hello after the welcome: not welcomed again", hello_twice)


def long_version(world) -> Verdict:
    verdict, campaign, model = _handshake(world, hello=wire.hello(client_version="9" * 5000, machine="m" * 100_000))
    model.refresh_from_db()
    stored = len(model.client_version or "")
    return Verdict(verdict.refused, stored > 32, f"{verdict.note}; client_version stored with {stored} chars")


REGISTRY.add("handshake", "huge_version_and_machine",
             "a 5,000-character client_version and a 100 kB machine name: at most 32 characters stored", long_version)
