"""Building what hostile clients send: valid CartPole chunks and evaluation results to start from,
and raw msgpack for what the protocol's own writers refuse to produce."""

from __future__ import annotations

import itertools
import time
from typing import Any

import msgpack
import numpy as np

_ids = itertools.count(1)


def new_id(prefix: str = "h") -> str:
    return f"{prefix}-{next(_ids)}"


def chunk(steps: int = 8, *, done: bool = False, version: int = 0, chunk_id: str | None = None,
          reward: float = 1.0, masks: bool = False, **episode: Any) -> dict[str, Any]:
    """A valid CartPole chunk's wire map (obs near zero, actions 0/1, reward 1 a step), to mutate."""
    from client_app import protocol as P

    rng = np.random.default_rng(next(_ids))
    message = P.Chunk(
        id=chunk_id or new_id("c"),
        model_version=version,
        obs=rng.normal(0, 0.05, size=(steps + 1, 4)).astype(np.float32),
        actions=rng.integers(0, 2, size=steps).astype(np.int64),
        rewards=np.full(steps, reward, dtype=np.float32),
        terminated=done,
        episode_return=float(steps * reward) if done else None,
        episode_length=steps if done else None,
        masks=np.ones((steps + 1, 2), bool) if masks else None,
    ).to_wire()
    if done and episode:
        message["episode"].update(episode)
    return message


def eval_result(version: int, *, ret: float = 20.0, length: int = 20, result_id: str | None = None,
                outcome: dict | None = None) -> dict[str, Any]:
    return {"type": "eval", "id": result_id or new_id("e"), "model_version": version, "return": ret,
            "length": length, "outcome": outcome, "made": int(time.time())}


def arr(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return arr(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def raw(obj: Any) -> bytes:
    """msgpack of anything (ints as map keys, ext types, arrays as wire maps), as a hostile client writes it."""
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def hello(**fields: Any) -> dict[str, Any]:
    from client_app import __version__
    from client_app import protocol as P

    message = P.hello(client_version=__version__, machine="hostile")
    message.update(fields)
    return message
