"""Rates: chunks, garbage and connections from one token or one address. Each burst is bounded (at
most a few thousand small frames, 150 connections) and judged by what Redis stored and counted."""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np

from hostile import wire
from hostile.cases.common import answer_code
from hostile.registry import REGISTRY, Verdict


def _rate_limit() -> int:
    from django.conf import settings

    return int(settings.SOULSAI_RATE_CHUNKS_PER_S)


def burst(s, frames, *, read_s: float = 1.5):
    """Send every frame without waiting, then read answers until ``read_s`` of quiet; (counts, seconds
    from the first frame to the last answer: the span the server's rate windows saw, closed)."""
    t0 = time.perf_counter()
    for frame in frames:
        if not s.send(frame):
            break
    replies = s.drain(timeout=read_s)
    elapsed = max(0.0, time.perf_counter() - t0 - (read_s if replies else 0.0))
    counts = Counter(answer_code(r, None) if r.get("type") != "ack" else "ack" for r in replies)
    return counts, elapsed, s.close_code is not None


def chunks_over_rate(world) -> Verdict:
    campaign = world.campaign()
    _, raw = world.token(campaign)
    n = 1000
    with world.session(raw) as s:
        counts, elapsed, closed = burst(s, (wire.chunk(steps=2) for _ in range(n)))
    figures = world.figures(campaign)
    allowed = _rate_limit() * (math.ceil(elapsed) + 1)
    return Verdict(counts.get("rate_limited", 0) > 0 or closed, figures.xlen > allowed,
                   f"{n} chunks in {elapsed:.2f} s: {dict(counts)}; {figures.xlen} stored (allowed {allowed})")


REGISTRY.add("flood", "chunks_over_rate", "1,000 valid chunks at once from one token: at most the rate limit stored",
             chunks_over_rate, quick=True)


def _garbage(frame_maker, n: int = 600, *, status: str = "running"):
    def fn(world) -> Verdict:
        campaign = world.campaign(status=status)
        _, raw = world.token(campaign)
        with world.session(raw) as s:
            counts, elapsed, closed = burst(s, (frame_maker() for _ in range(n)))
        answered = sum(counts.values())
        # Through: every frame was decoded and answered at full speed, and the connection stayed open.
        unlimited = answered >= n * 0.9 and not closed and counts.get("rate_limited", 0) == 0
        return Verdict(closed or counts.get("rate_limited", 0) > 0, unlimited,
                       f"{n} frames in {elapsed:.2f} s: {dict(counts)}; closed {closed}")

    return fn


REGISTRY.add("flood", "garbage_undecodable", "600 frames that are not msgpack at once: slowed or closed, not all answered",
             _garbage(lambda: b"\xc1" * 16))
REGISTRY.add("flood", "garbage_schema", "600 well-formed maps of an unknown type: slowed or closed",
             _garbage(lambda: wire.raw({"type": "nonsense"})))
REGISTRY.add("flood", "garbage_tiny", "3,000 one-byte frames: slowed or closed", _garbage(lambda: b"\x00", 3000))
REGISTRY.add("flood", "garbage_text", "600 text frames: slowed or closed", _garbage(lambda: "x"))
REGISTRY.add("flood", "hello_repeat", "600 hellos after the welcome: slowed or closed", _garbage(wire.hello))
REGISTRY.add("flood", "paused_campaign_chunks", "600 chunks on a paused campaign: rate limited like any other",
             _garbage(lambda: wire.chunk(steps=2), status="paused"))


def garbage_then_chunk(world) -> Verdict:
    """Refused frames count toward the rate: after 2x the limit of garbage, a valid chunk in that second waits."""
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        # Start right after a second boundary so the whole burst shares one window.
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
        burst(s, (b"\xc1" for _ in range(_rate_limit() * 2)), read_s=0.2)
        reply = s.answer(wire.chunk()) or {}
    figures = world.figures(campaign)
    return Verdict(reply.get("type") != "ack", figures.xlen > 0,
                   f"chunk after garbage answered {answer_code(reply, s.close_code)}; stored {figures.xlen}")


REGISTRY.add("flood", "garbage_counts_toward_rate",
             "twice the rate limit of garbage, then a valid chunk in the same second: not stored", garbage_then_chunk)


def flags_machine(world) -> Verdict:
    from trainer.keys import CampaignKeys

    campaign = world.campaign()
    token, raw = world.token(campaign)
    with world.session(raw) as s:
        for _ in range(60):
            s.answer({**wire.chunk(), "actions": wire.arr(np.full(8, 5, np.int64))})
    flagged = world.redis_client().hexists(CampaignKeys(campaign.id).flagged, token.id)
    return Verdict(flagged, not flagged, f"flagged after 60 bad chunks: {flagged}")


REGISTRY.add("flood", "bad_data_flags", "60 chunks refused for bad data: the machine is flagged", flags_machine)


def duplicate_resends(world) -> Verdict:
    campaign = world.campaign()
    _, raw = world.token(campaign)
    message = wire.chunk(steps=4)
    with world.session(raw) as s:
        counts, elapsed, closed = burst(s, (message for _ in range(600)))
    figures = world.figures(campaign)
    allowed = _rate_limit() * (math.ceil(elapsed) + 1)
    return Verdict(counts.get("rate_limited", 0) > 0, figures.samples > 4 or counts.get("ack", 0) > allowed,
                   f"{dict(counts)}; {figures.samples} samples")


REGISTRY.add("flood", "duplicate_resends", "one chunk resent 600 times at once: counted once, resends rate limited",
             duplicate_resends)


def _hold(world, raws, *, hello: bool = True, headers=None):
    """Open one connection per raw token (None: none), say hello; how many were welcomed."""
    sessions, welcomed = [], 0
    from hostile.world import Session

    try:
        for raw in raws:
            try:
                s = Session(world.ws_connect(raw, headers=headers))
            except Exception:
                continue
            sessions.append(s)
            if hello and s.send(wire.hello()):
                welcomed += (s.recv(3) or {}).get("type") == "welcome"
        time.sleep(0.3)
        still_open = sum(1 for s in sessions if s.open)
    finally:
        for s in sessions:
            try:
                s.ws.close()
            except Exception:
                pass
    return len(sessions), welcomed, still_open


def connections_per_token(world) -> Verdict:
    campaign = world.campaign()
    _, raw = world.token(campaign)
    opened, welcomed, still = _hold(world, [raw] * 150)
    return Verdict(welcomed < 150, welcomed > 20,
                   f"150 connections with one token: {opened} opened, {welcomed} welcomed, {still} still open")


REGISTRY.add("flood", "connections_per_token", "150 connections with one token: at most a handful welcomed",
             connections_per_token, budget_s=60)


def connections_unauthenticated(world) -> Verdict:
    opened, _, still = _hold(world, [None] * 150, hello=False)
    return Verdict(still < opened, still > 20,
                   f"150 connections without a token: {opened} upgraded, {still} still open after 0.3 s")


REGISTRY.add("flood", "connections_without_token",
             "150 connections without a token from one address: closed, none held open", connections_unauthenticated,
             budget_s=60)


def pings(world) -> Verdict:
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        waiters = [s.ws.ping() for _ in range(2000)]
        answered = sum(w.wait(5) for w in waiters[-1:])
    return Verdict(False, False, f"2,000 pings, last answered {bool(answered)}")


REGISTRY.add("flood", "ping_flood", "2,000 websocket pings at once: the loop does not stall past its bound", pings,
             cost_bound=True)


def two_connections(world) -> Verdict:
    """The rate is per token, not per connection: two connections of one token share it."""
    campaign = world.campaign()
    _, raw = world.token(campaign)
    with world.session(raw) as a, world.session(raw) as b:
        t0 = time.perf_counter()
        for _ in range(500):
            a.send(wire.chunk(steps=2))
            b.send(wire.chunk(steps=2))
        a.drain(1.0)
        b.drain(1.0)
        elapsed = time.perf_counter() - t0 - 1.0
    figures = world.figures(campaign)
    allowed = _rate_limit() * (math.ceil(elapsed) + 1)
    return Verdict(figures.xlen < 1000, figures.xlen > allowed,
                   f"1,000 chunks over two connections in {elapsed:.2f} s: {figures.xlen} stored (allowed {allowed})")


REGISTRY.add("flood", "rate_across_connections", "two connections of one token: they share one rate limit",
             two_connections)


def frames_without_token(world) -> Verdict:
    from hostile.world import Session

    campaign = world.campaign()
    try:
        s = Session(world.ws_connect(None))
    except Exception as exc:
        return Verdict(True, False, f"upgrade refused ({type(exc).__name__})")
    sent = sum(s.send(wire.chunk()) for _ in range(200))
    s.drain(0.5)
    s.ws.close()
    stored = world.figures(campaign).xlen
    return Verdict(sent < 200 or s.close_code is not None, stored > 0,
                   f"{sent} frames sent without a token before the close ({s.close_code})")


REGISTRY.add("flood", "frames_without_token", "200 chunks on a connection without a token: closed, nothing read",
             frames_without_token)


def _many_tokens(world, headers_for) -> tuple[int, int]:
    campaign = world.campaign()
    raws = [world.token(campaign)[1] for _ in range(100)]
    from hostile.world import Session

    held, welcomed = [], 0
    try:
        for i, raw in enumerate(raws):
            try:
                s = Session(world.ws_connect(raw, headers=headers_for(i)))
            except Exception:
                continue
            held.append(s)
            if s.send(wire.hello()):
                welcomed += (s.recv(3) or {}).get("type") == "welcome"
    finally:
        for s in held:
            try:
                s.ws.close()
            except Exception:
                pass
    return welcomed, len(raws)


def connections_per_address(world) -> Verdict:
    welcomed, n = _many_tokens(world, lambda i: None)
    return Verdict(welcomed < n, welcomed >= n, f"{welcomed}/{n} machines (one token each) welcomed from one address")


REGISTRY.add("flood", "connections_per_address",
             "100 machines with a token each from one address: capped per address", connections_per_address,
             budget_s=60)


def forwarded_spoof(world) -> Verdict:
    welcomed, n = _many_tokens(world, lambda i: {"X-Forwarded-For": f"10.8.{i // 250}.{i % 250 + 1}"})
    return Verdict(welcomed < n, welcomed >= n,
                   f"{welcomed}/{n} welcomed, each claiming another X-Forwarded-For from an untrusted peer")


REGISTRY.add("flood", "forwarded_for_spoof",
             "100 machines from one address, each claiming another X-Forwarded-For: the untrusted header is ignored",
             forwarded_spoof, budget_s=60)
