"""Frames: one websocket binary frame is one msgpack map with a ``type`` key; arrays travel as maps.

A NumPy array goes on the wire as ``{"dtype": "<f4", "shape": [T, 4], "data": <raw bytes>}``, never
pickled. The caps here keep a hostile frame from costing memory: they are checked before and while
unpacking.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from client_app.protocol.codes import R_DTYPE, R_MALFORMED, R_SCHEMA, R_SHAPE, R_TOO_LARGE, ProtocolError

MAX_FRAME_BYTES = 8 * 1024 * 1024
ALLOWED_DTYPES = frozenset({"|b1", "|i1", "|u1", "<i2", "<i4", "<i8", "<u2", "<u4", "<f4", "<f8"})


def _encode_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__} on the wire")


def pack(message: dict[str, Any]) -> bytes:
    """Encode one message map (a typed message's ``to_wire()``) as a binary frame."""
    return msgpack.packb(message, default=_encode_default, use_bin_type=True)


# What one frame FROM A CLIENT may hold (``unpack(frame, client=True)``, the relay's side). Every
# client message is a flat map of at most a dozen keys whose values are scalars, small maps (an
# array's {dtype, shape, data}, an episode, an outcome) and shapes of at most 4 dimensions. So a map
# holds at most CLIENT_MAX_MAP_LEN entries, an array CLIENT_MAX_ARRAY_LEN items, a string 1 KiB, and
# the frame at most CLIENT_MAX_CONTAINERS maps and arrays in all: decoding stops at the first one
# past it. With msgpack's own nesting limit (1,024 open containers) that bounds the Python objects a
# frame can make to about 70,000 (a few MiB) however it is built, where 8 MiB of empty maps made
# 8.4 million before (567 MiB). Frames from the server (a welcome lists the spaces' bounds) use
# the looser general limits.
CLIENT_MAX_MAP_LEN = 32
CLIENT_MAX_ARRAY_LEN = 8
CLIENT_MAX_STR_LEN = 1024
CLIENT_MAX_CONTAINERS = 64


class _ContainerBudget:
    """msgpack's object_hook and list_hook: counts maps and arrays, stops at the budget."""

    def __init__(self, limit: int):
        self.left = limit

    def __call__(self, value: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise ValueError("the frame holds more maps and arrays than any message has")
        return value


def unpack(frame: bytes, *, client: bool = False) -> dict[str, Any]:
    """Decode one frame into a message map, refusing anything that is not a typed map.

    ``client``: the frame comes from a client (the relay): the tight CLIENT_* limits above apply.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError(R_MALFORMED, "frames must be binary msgpack, not text")
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(R_TOO_LARGE, f"frame of {len(frame)} bytes exceeds the {MAX_FRAME_BYTES}-byte cap")
    limits: dict[str, Any] = {"max_str_len": 1 << 16, "max_array_len": 1 << 12, "max_map_len": 1 << 10}
    if client:
        budget = _ContainerBudget(CLIENT_MAX_CONTAINERS)
        limits = {
            "max_str_len": CLIENT_MAX_STR_LEN,
            "max_array_len": CLIENT_MAX_ARRAY_LEN,
            "max_map_len": CLIENT_MAX_MAP_LEN,
            "object_hook": budget,
            "list_hook": budget,
        }
    try:
        message = msgpack.unpackb(
            frame, raw=False, strict_map_key=True, max_bin_len=MAX_FRAME_BYTES, max_ext_len=0, **limits
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(R_MALFORMED, f"frame is not valid msgpack: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(R_MALFORMED, "a message must be a map with a string 'type'")
    return message


_ARRAY_KEYS = frozenset({"dtype", "shape", "data"})
_DTYPES = {name: np.dtype(name) for name in ALLOWED_DTYPES}  # parsed once: np.dtype(str) costs more than the check


def decode_array(value: Any, name: str) -> np.ndarray:
    """Turn a wire array map into a read-only NumPy array, checking dtype and size first."""
    if not isinstance(value, dict) or value.keys() != _ARRAY_KEYS:
        raise ProtocolError(R_SCHEMA, f"'{name}' must be an array map with dtype, shape and data")
    dtype, shape, data = value["dtype"], value["shape"], value["data"]
    np_dtype = _DTYPES.get(dtype) if isinstance(dtype, str) else None
    if np_dtype is None:
        raise ProtocolError(R_DTYPE, f"'{name}' has dtype {dtype!r}; allowed: {sorted(ALLOWED_DTYPES)}")
    if not isinstance(shape, list) or len(shape) > 4 or not all(
        type(d) is int and 0 <= d <= MAX_FRAME_BYTES for d in shape  # bool is not an int here
    ):
        raise ProtocolError(R_SHAPE, f"'{name}' has an invalid shape {shape!r}")
    itemsize = np_dtype.itemsize
    size = math.prod(shape)
    # The dimensions other than 0 must fit a frame too: [0, 2**23, 2**23, 2**23] holds no element, but
    # NumPy cannot even describe it (its byte count overflows) and would raise.
    if (size or math.prod(d for d in shape if d)) * itemsize > MAX_FRAME_BYTES:
        raise ProtocolError(R_SHAPE, f"'{name}' declares a shape {shape} larger than any frame can carry")
    if not isinstance(data, bytes):
        raise ProtocolError(R_SCHEMA, f"'{name}' data must be raw bytes")
    if size * itemsize != len(data):
        raise ProtocolError(
            R_SHAPE, f"'{name}' declares shape {shape} of {dtype} but carries {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np_dtype).reshape(shape)
