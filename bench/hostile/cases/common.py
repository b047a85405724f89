"""Judges the relay cases share: one frame (or a few) on a fresh campaign, read back from Redis."""

from __future__ import annotations

from typing import Any

from hostile.registry import Verdict
from hostile.world import World

REFUSING = ("reject", "error")


def answer_code(reply: dict | None, close_code: int | None) -> str:
    if reply is None:
        return f"closed {close_code}" if close_code else "no answer"
    return str(reply.get("code") or reply.get("type"))


def one_frame(world: World, frame: Any, *, hello: bool = True, status: str = "running",
              want: str | None = None, **campaign_fields) -> Verdict:
    """Send ``frame`` on a fresh campaign's session; it got through if anything of it reached the
    campaign's stream or counters, or the server answered with ``server_error`` (it broke)."""
    campaign = world.campaign(status=status, **campaign_fields)
    _, raw = world.token(campaign)
    with world.session(raw, hello=hello) as s:
        reply = s.answer(frame)
        code = answer_code(reply, s.close_code)
    figures = world.figures(campaign)
    stored = figures.xlen > 0 or figures.samples > 0
    broke = code == "server_error" or s.close_code == 1011
    refused = (reply is None and s.close_code is not None) or (reply or {}).get("type") in REFUSING
    note = f"answer {code}" + (f" (wanted {want})" if want and code != want else "")
    if stored:
        note += f"; stored: {figures.xlen} entries, {figures.samples} samples"
    return Verdict(refused=refused and not broke, got_through=stored or broke, note=note)


def lie(world: World, frame: dict, judge, *, campaign=None, sync: bool = False, **campaign_fields) -> Verdict:
    """Send a well-formed but lying chunk; ``judge(world, campaign, figures, reply)`` says whether
    the lie reached anything (returns (got_through, note))."""
    campaign = campaign or world.campaign(**campaign_fields)
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        reply = s.answer(frame)
        code = answer_code(reply, s.close_code)
    if sync:
        campaign = world.sync(campaign)
    got, note = judge(world, campaign, world.figures(campaign), reply)
    refused = (reply or {}).get("type") in REFUSING or reply is None
    return Verdict(refused=refused, got_through=bool(got), note=f"answer {code}; {note}")


def stored_any(world, campaign, figures, reply):
    return figures.xlen > 0 or figures.samples > 0, f"{figures.xlen} entries, {figures.samples} samples"
