"""What is stored is what was validated, and its cost is bounded: padding, de-duplication, Redis."""

from __future__ import annotations

import os
import time

from hostile import wire
from hostile.cases.common import answer_code
from hostile.registry import REGISTRY, Verdict

VALIDATED_BYTES = 64 * 1024  # an 8-step CartPole chunk is about 400 bytes; anything near this is padding


def _padded(world, *, pad_bytes: int, status: str = "running", where: str = "top", count: int = 1) -> Verdict:
    campaign = world.campaign(status=status)
    _, raw = world.token(campaign)
    replies = []
    with world.session(raw) as s:
        for _ in range(count):
            message = wire.chunk(done=where == "episode")
            junk = os.urandom(pad_bytes)
            if where == "episode":
                message["episode"]["pad"] = junk
            else:
                message["pad"] = junk
            replies.append(answer_code(s.answer(message), s.close_code))
    figures = world.figures(campaign)
    got = figures.stream_bytes > VALIDATED_BYTES * count
    return Verdict(all(r not in ("ack",) for r in replies), got,
                   f"answers {sorted(set(replies))}; stream holds {figures.xlen} entries, {figures.stream_bytes:,} bytes")


REGISTRY.add("storage", "padding_1mib", "a chunk padded with 1 MiB under an unknown key: not stored as sent",
             lambda w: _padded(w, pad_bytes=1 << 20), quick=True)
REGISTRY.add("storage", "padding_7mib", "a chunk padded with 7 MiB: not stored as sent",
             lambda w: _padded(w, pad_bytes=7 << 20))
REGISTRY.add("storage", "padding_paused", "ten chunks padded with 700 kB each on a paused campaign: nothing kept",
             lambda w: _padded(w, pad_bytes=700_000, status="paused", count=10))
REGISTRY.add("storage", "padding_in_episode", "1 MiB of padding inside 'episode': not stored",
             lambda w: _padded(w, pad_bytes=1 << 20, where="episode"))
REGISTRY.add("storage", "padding_many", "ten chunks of 500 kB padding each: the stream's bytes stay bounded",
             lambda w: _padded(w, pad_bytes=500_000, count=10))


def _config(world, name: str, good) -> Verdict:
    value = world.redis_client().config_get(name).get(name)
    ok = good(value)
    return Verdict(ok, not ok, f"{name} = {value}")


REGISTRY.add("storage", "redis_maxmemory", "the embedded Redis runs with a maxmemory",
             lambda w: _config(w, "maxmemory", lambda v: v not in (None, "0")))
REGISTRY.add("storage", "redis_noeviction", "the embedded Redis never evicts (maxmemory-policy noeviction)",
             lambda w: _config(w, "maxmemory-policy", lambda v: v == "noeviction"))


def dedup_cross_machine(world) -> Verdict:
    """Item 9: another machine's chunk with the same id was acked as a duplicate and dropped."""
    campaign = world.campaign()
    _, raw_a = world.token(campaign)
    _, raw_b = world.token(campaign)
    with world.session(raw_a) as a:
        a.answer(wire.chunk(chunk_id="same-id-1"))
    with world.session(raw_b) as b:
        reply = b.answer(wire.chunk(chunk_id="same-id-1")) or {}
    figures = world.figures(campaign)
    dropped = reply.get("type") == "ack" and figures.xlen < 2
    return Verdict(reply.get("type") == "reject", dropped,
                   f"B answered {answer_code(reply, None)} duplicate={reply.get('duplicate')}; stream {figures.xlen}")


REGISTRY.add("storage", "dedup_cross_machine",
             "two machines use the same chunk id: the second is stored, not acked as a duplicate and dropped",
             dedup_cross_machine)


def dedup_window(world) -> Verdict:
    """Item 9: a chunk resent after its de-duplication key expired is counted again."""
    from trainer.keys import CampaignKeys

    campaign = world.campaign()
    _, raw = world.token(campaign)
    made = int(time.time())
    message = {**wire.chunk(chunk_id="resent-late-1"), "made": made}
    with world.session(raw) as s:
        s.answer(message)
        # 7 days later: its de-duplication key expired (whatever the key's layout: per campaign or machine),
        # and the chunk, made when it was first sent, is now 7 days old.
        for key in world.redis_client().scan_iter(match=f"{CampaignKeys(campaign.id).tag}:*resent-late-1*"):
            world.redis_client().delete(key)
        reply = s.answer({**message, "made": made - 7 * 24 * 3600}) or {}
    figures = world.figures(campaign)
    twice = figures.samples > 8 or figures.xlen > 1
    return Verdict(reply.get("type") == "reject" or bool(reply.get("duplicate")), twice,
                   f"resend answered {answer_code(reply, None)}; {figures.samples} samples, {figures.xlen} entries")


REGISTRY.add("storage", "dedup_window_resend",
             "a chunk resent after its de-duplication key expired: never counted twice", dedup_window)


def eval_namespace(world) -> Verdict:
    """Evaluation ids have their own namespace: a chunk named 'eval:X' must not swallow eval X."""
    from trainer.evaluation import evaluation_request
    from trainer.keys import CampaignKeys

    campaign = world.campaign()
    model = world.publish(campaign, 1)
    evaluation_request(world.redis_client(), CampaignKeys(campaign.id), model=model.notice(), episodes=1)
    _, raw = world.token(campaign)
    with world.session(raw) as s:
        s.answer(wire.chunk(chunk_id="eval:ns-1"))
        ask = s.answer(wire.chunk(done=True)) or {}
        reply = s.answer(wire.eval_result(1, ret=8.0, length=8, result_id="ns-1")) or {}
    swallowed = reply.get("type") == "ack" and bool(reply.get("duplicate"))
    return Verdict(reply.get("type") == "reject", swallowed,
                   f"asked {bool(ask.get('evaluate'))}; eval answered {answer_code(reply, None)} "
                   f"duplicate={reply.get('duplicate')}")


REGISTRY.add("storage", "eval_id_namespace",
             "a chunk id 'eval:X' then an evaluation result 'X': not taken for a duplicate", eval_namespace)


def padding_array_map(world) -> Verdict:
    from hostile.cases.common import one_frame

    message = wire.chunk()
    message["obs"] = {**wire.arr(message["obs"]), "pad": os.urandom(1 << 20)}
    return one_frame(world, message, want="schema")


REGISTRY.add("storage", "padding_array_map", "1 MiB of padding inside an array map: refused 'schema', nothing stored",
             padding_array_map)
