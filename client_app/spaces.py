"""JSON specs of gymnasium spaces, so the server can declare a campaign's spaces without the env.

A spec is plain JSON (it is stored in the database and sent in the handshake):

- ``{"type": "box", "shape": [4], "dtype": "float32", "low": [...], "high": [...]}``
- ``{"type": "discrete", "n": 2, "start": 0}``
"""

from __future__ import annotations

from typing import Any

import numpy as np

SpaceSpec = dict[str, Any]


# gymnasium writes "unbounded" as float32's largest value as often as infinity (CartPole does).
_UNBOUNDED = float(np.finfo(np.float32).max)


def _bounds(values: np.ndarray) -> list[float | None]:
    # JSON has no infinity: an unbounded side is written as null.
    return [None if not np.isfinite(v) or abs(v) >= _UNBOUNDED else float(v) for v in values.reshape(-1)]


def normalize_spec(spec: SpaceSpec) -> SpaceSpec:
    """The spec with every bound a float (or None).

    A spec read back from a database may hold integers where it held floats (PostgreSQL's jsonb
    writes 1e20 as a 21-digit integer), which msgpack cannot always encode and which no longer
    compare as floats.
    """
    if spec.get("type") != "box":
        return spec
    return {
        **spec,
        "low": [None if v is None else float(v) for v in spec["low"]],
        "high": [None if v is None else float(v) for v in spec["high"]],
    }


def space_to_spec(space: Any) -> SpaceSpec:
    """Describe a gymnasium Box or Discrete space as a JSON-able dict."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "box",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "low": _bounds(np.asarray(space.low, dtype=np.float64)),
            "high": _bounds(np.asarray(space.high, dtype=np.float64)),
        }
    raise ValueError(f"unsupported space {space!r}: only Box and Discrete for now")


def spec_bounds(spec: SpaceSpec) -> tuple[np.ndarray, np.ndarray]:
    """Low and high bounds of a box spec as float64 arrays of the space's shape (None -> inf)."""
    shape = tuple(spec["shape"])
    low = np.array([-np.inf if v is None else v for v in spec["low"]], dtype=np.float64).reshape(shape)
    high = np.array([np.inf if v is None else v for v in spec["high"]], dtype=np.float64).reshape(shape)
    return low, high


def flat_dim(spec: SpaceSpec) -> int:
    """Length of the flat vector a policy network takes for this observation spec."""
    if spec["type"] == "box":
        return int(np.prod(spec["shape"], dtype=np.int64))
    if spec["type"] == "discrete":
        return int(spec["n"])
    raise ValueError(f"unsupported spec type {spec['type']!r}")


def action_count(spec: SpaceSpec) -> int:
    if spec["type"] != "discrete":
        raise ValueError("only Discrete action spaces are supported for now")
    return int(spec["n"])
