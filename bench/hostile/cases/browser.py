"""The browsers' websocket /ws/campaigns/<slug>/ (anonymous, read-only), and the Origin of both
websocket routes. An anonymous visitor may cost the server next to nothing."""

from __future__ import annotations

import time

from hostile.registry import REGISTRY, Verdict
from hostile.world import Session

EVIL = {"Origin": "http://evil.example"}


def _open(world, slug: str, headers=None, **kw):
    """Open the browsers' socket as the portal's own page does (its Origin), unless ``headers`` say otherwise."""
    headers = {"Origin": world.web.url} if headers is None else headers
    try:
        ws = world.ws_connect(None, path=f"/ws/campaigns/{slug}/", headers=headers, **kw)
    except Exception as exc:
        return None, f"upgrade refused ({type(exc).__name__})"
    s = Session(ws)
    first = s.first = s.recv(3)
    if first is None:
        ws.close()
        return None, f"closed {s.close_code}"
    return s, "accepted"


def _send_and_judge(payload_maker, *, cost=False):
    def fn(world) -> Verdict:
        campaign = world.campaign()
        mark = world.log_mark()
        s, how = _open(world, campaign.slug)
        if s is None:
            return Verdict(True, False, how)
        try:
            s.send(payload_maker())
            s.recv(1.0)
            still_open = s.close_code is None and s.open
        finally:
            s.ws.close()
        time.sleep(0.1)
        tb = world.traceback_since(mark)
        broke = tb or s.close_code == 1011
        return Verdict(not still_open, broke, f"closed {s.close_code}; traceback {tb}")

    return fn


def _big_json(n_bytes: int) -> str:
    return "[" + "0.5," * (n_bytes // 4 - 1) + "0.5]"


REGISTRY.add("browser", "text_15mib", "a 15 MiB JSON text frame (3.9 M floats) from a visitor: cost bounded",
             _send_and_judge(lambda: _big_json(15 << 20)), cost_bound=True, quick=True)
REGISTRY.add("browser", "text_1mib", "a 1 MiB JSON text frame from a visitor: not decoded at length",
             _send_and_judge(lambda: _big_json(1 << 20)), cost_bound=True)
REGISTRY.add("browser", "nested_json", "a 100,000-deep nested JSON array: no traceback",
             _send_and_judge(lambda: "[" * 100_000 + "]" * 100_000))
REGISTRY.add("browser", "binary_frame", "a binary frame on the browsers' socket: no traceback",
             _send_and_judge(lambda: b"\x00\x01binary"))
REGISTRY.add("browser", "invalid_json", "a text frame that is not JSON: no traceback", _send_and_judge(lambda: "{nope"))
REGISTRY.add("browser", "frame_32mib", "a 32 MiB text frame: closed by the size limit, cost bounded",
             _send_and_judge(lambda: "x" * (32 << 20)), cost_bound=True)


def cross_origin(world) -> Verdict:
    campaign = world.campaign()
    s, how = _open(world, campaign.slug, headers=EVIL)
    if s is not None:
        s.ws.close()
    return Verdict(s is None, s is not None, f"Origin http://evil.example: {how}")


REGISTRY.add("browser", "cross_origin", "a subscription from a foreign Origin: refused", cross_origin)


def cross_origin_relay(world) -> Verdict:
    campaign = world.campaign()
    _, raw = world.token(campaign)
    try:
        with world.session(raw, headers=EVIL) as s:
            welcomed = (s.welcome or {}).get("type") == "welcome"
    except Exception as exc:
        return Verdict(True, False, f"upgrade refused ({type(exc).__name__})")
    return Verdict(not welcomed, welcomed, f"relay with Origin http://evil.example: welcomed {welcomed}")


REGISTRY.add("browser", "cross_origin_relay", "the clients' socket opened from a web page of a foreign Origin: refused",
             cross_origin_relay)


def _many(world, headers_for) -> tuple[int, int]:
    campaign = world.campaign()
    held, accepted = [], 0
    try:
        for i in range(150):
            s, _ = _open(world, campaign.slug, headers={"Origin": world.web.url, **(headers_for(i) or {})})
            if s is not None:
                accepted += 1
                held.append(s)
    finally:
        for s in held:
            s.ws.close()
    return accepted, 150


def per_address(world) -> Verdict:
    accepted, n = _many(world, lambda i: None)
    return Verdict(accepted < n, accepted >= 100, f"{accepted}/{n} subscriptions from one address accepted")


REGISTRY.add("browser", "connections_per_address", "150 subscriptions from one address: capped well below 100",
             per_address, budget_s=60)


def forwarded_spoof(world) -> Verdict:
    accepted, n = _many(world, lambda i: {"X-Forwarded-For": f"10.9.{i // 250}.{i % 250 + 1}"})
    return Verdict(accepted < n, accepted >= 100,
                   f"{accepted}/{n} accepted with a different X-Forwarded-For each from an untrusted peer")


REGISTRY.add("browser", "forwarded_for_spoof",
             "150 subscriptions, each claiming another X-Forwarded-For from an untrusted peer: still capped",
             forwarded_spoof, budget_s=60)


def cross_origin_many(world) -> Verdict:
    accepted, n = _many(world, lambda i: EVIL)
    return Verdict(accepted < n, accepted > 0, f"{accepted}/{n} cross-origin subscriptions accepted")


REGISTRY.add("browser", "cross_origin_150", "150 cross-origin subscriptions: none accepted", cross_origin_many,
             budget_s=60)


def message_flood(world) -> Verdict:
    campaign = world.campaign()
    s, how = _open(world, campaign.slug)
    if s is None:
        return Verdict(True, False, how)
    try:
        for _ in range(2000):
            if not s.send("{}"):
                break
        time.sleep(0.3)
        still_open = s.close_code is None and s.open
    finally:
        s.ws.close()
    return Verdict(not still_open, still_open, f"after 2,000 frames from a read-only visitor: open {still_open}")


REGISTRY.add("browser", "message_flood", "2,000 frames from a visitor who has nothing to say: closed",
             message_flood, cost_bound=True)


def unknown_slug(world) -> Verdict:
    s, how = _open(world, "no-such-campaign")
    if s is not None:
        s.ws.close()
    return Verdict(s is None, s is not None, how)


REGISTRY.add("browser", "unknown_slug", "a subscription to a campaign that does not exist: refused", unknown_slug)


def draft_slug(world) -> Verdict:
    campaign = world.campaign(status="draft")
    s, how = _open(world, campaign.slug)
    if s is not None:
        s.ws.close()
    return Verdict(s is None, s is not None, how)


REGISTRY.add("browser", "draft_campaign", "a subscription to a draft campaign: refused", draft_slug)


def deflate_bomb(world) -> Verdict:
    campaign = world.campaign()
    s, how = _open(world, campaign.slug, compression="deflate")
    if s is None:
        return Verdict(True, False, how)
    try:
        s.send(_big_json(15 << 20))
        s.recv(2)
    finally:
        s.ws.close()
    return Verdict(s.close_code is not None, False, f"closed {s.close_code}")


REGISTRY.add("browser", "deflate_json", "15 MiB of JSON sent compressed to the browsers' socket: cost bounded",
             deflate_bomb, cost_bound=True)


def origin_null(world) -> Verdict:
    campaign = world.campaign()
    s, how = _open(world, campaign.slug, headers={"Origin": "null"})
    if s is not None:
        s.ws.close()
    return Verdict(s is None, s is not None, f"Origin null: {how}")


REGISTRY.add("browser", "origin_null", "a subscription with Origin 'null' (a sandboxed page): refused", origin_null)


def relay_text(world) -> Verdict:
    from hostile.cases.common import one_frame

    return one_frame(world, "[" + "0.5," * ((15 << 20) // 4 - 1) + "0.5]", want="malformed")


REGISTRY.add("browser", "relay_text_15mib", "a 15 MiB JSON text frame on the clients' socket: refused unread",
             relay_text, cost_bound=True)
