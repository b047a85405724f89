"""Small or capped frames that cost the server far more than their size. Every case here is
cost-bounded: it gets through when it grows the relay process past the RSS bound, stalls its event
loop past the stall bound, crashes it, or gets anything stored."""

from __future__ import annotations

import struct

import msgpack
import numpy as np

from hostile import wire
from hostile.cases.common import one_frame
from hostile.registry import REGISTRY, Verdict

CAP = 8 * 1024 * 1024



def _nested(element: bytes, per_inner: int = 2048) -> bytes:
    """{"type": "chunk", "id": ..., "x": [[element] * per_inner] * outer}, just under the 8 MiB cap."""
    outer = (CAP - 4096) // (len(element) * per_inner + 3)
    inner = b"\xdc" + struct.pack(">H", per_inner) + element * per_inner
    head = b"\x83" + msgpack.packb("type") + msgpack.packb("chunk") + msgpack.packb("id") + msgpack.packb("amp-1")
    return head + msgpack.packb("x") + b"\xdd" + struct.pack(">I", outer) + inner * outer


def _frame_case(name, doc, make, want=None, quick=False):
    REGISTRY.add("amplification", name, doc, lambda world: one_frame(world, make(), want=want), cost_bound=True,
                 quick=quick)


_frame_case("empty_maps_8mib", "8 MiB of empty maps (8.4 M objects) in one frame: cost bounded",
            lambda: _nested(b"\x80"), quick=True)
_frame_case("empty_arrays_8mib", "8 MiB of empty arrays in one frame: cost bounded", lambda: _nested(b"\x90"))
_frame_case("nils_8mib", "8 MiB of nils in one frame: cost bounded", lambda: _nested(b"\xc0"))
_frame_case("small_strings_8mib", "2 M three-letter strings in one frame: cost bounded",
            lambda: _nested(msgpack.packb("abc")))
_frame_case("float32s_8mib", "1.6 M msgpack floats in one frame: cost bounded",
            lambda: _nested(msgpack.packb(1.5, use_single_float=True)))
_frame_case("deep_nesting", "100,000 nested arrays: refused, no recursion error", lambda: b"\x91" * 100_000 + b"\xc0")
_frame_case("shape_overflow", "a declared shape [0, 8388608, 8388608, 8388608]: refused 'shape', not a server error",
            lambda: {**wire.chunk(), "obs": {"dtype": "<f4", "shape": [0, 8388608, 8388608, 8388608], "data": b""}},
            want="shape")
_frame_case("shape_huge_empty", "a declared shape [8388608, 8388608] with no data: refused 'shape'",
            lambda: {**wire.chunk(), "obs": {"dtype": "<f8", "shape": [8388608, 8388608], "data": b""}}, want="shape")
_frame_case("actions_8mib", "8 M int8 actions (a declared-and-delivered 8 MiB array): refused 'too_large'",
            lambda: {**wire.chunk(), "actions": wire.arr(np.zeros(CAP - 1024, np.int8))}, want="too_large")
_frame_case("string_over_cap", "a 1 MiB string (the cap is 64 KiB): refused 'malformed'",
            lambda: wire.raw({**wire.chunk(), "id": "a" * (1 << 20)}), want="malformed")
_frame_case("many_array_maps", "4,096 array maps of 2 kB each under one key: cost bounded",
            lambda: wire.raw({**wire.chunk(), "x": [wire.arr(np.zeros(512, np.float32))] * 4096}))
_frame_case("frame_over_cap", "a 9 MiB frame: refused or closed, nothing stored",
            lambda: wire.raw({**wire.chunk(), "pad": b"\0" * (9 << 20)}))


def huge_frame(world) -> Verdict:
    """A 64 MiB frame: the websocket's own size limit closes it before it is buffered whole."""
    verdict = one_frame(world, b"\x80" * (64 << 20))
    return verdict


REGISTRY.add("amplification", "frame_64mib", "a 64 MiB binary frame: closed by the websocket size limit",
             huge_frame, cost_bound=True)


def deflate_bomb(world) -> Verdict:
    """permessage-deflate: 64 MiB of zeros travel as ~64 kB and inflate on the server."""
    campaign = world.campaign()
    _, raw = world.token(campaign)
    from hostile.world import Session

    try:
        ws = world.ws_connect(raw, compression="deflate")
    except Exception as exc:
        return Verdict(True, False, f"upgrade refused: {exc}")
    s = Session(ws)
    try:
        negotiated = any("deflate" in type(e).__name__.lower() for e in getattr(ws.protocol, "extensions", []) or [])
        s.send(wire.hello())
        s.recv()
        reply = s.answer(wire.raw({**wire.chunk(), "pad": b"\0" * (64 << 20)}), timeout=10)
    finally:
        ws.close()
    figures = world.figures(campaign)
    return Verdict(reply is None or reply.get("type") != "ack", figures.xlen > 0,
                   f"deflate negotiated {negotiated}; answer {(reply or {}).get('code') or (reply or {}).get('type') or s.close_code}")


REGISTRY.add("amplification", "deflate_bomb", "64 MiB of zeros sent compressed (permessage-deflate): cost bounded",
             deflate_bomb, cost_bound=True)
