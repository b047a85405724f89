#!/usr/bin/env python
"""Cost of the wire format: pack, unpack and validate one chunk, next to JSON of lists.

Prints one line per measurement and, on the last line, JSON with the medians (microseconds per
chunk) and the sizes. Each figure is the median of --repeats timed batches of --number chunks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_app import protocol as P  # noqa: E402


def lunar_spaces() -> tuple[dict, dict]:
    obs = {"type": "box", "shape": [8], "dtype": "float32", "low": [None] * 8, "high": [None] * 8}
    return obs, {"type": "discrete", "n": 4, "start": 0}


def make_chunk(steps: int, obs_dim: int) -> P.Chunk:
    rng = np.random.default_rng(0)
    return P.Chunk(
        id="bench-0",
        model_version=0,
        obs=rng.normal(size=(steps + 1, obs_dim)).astype(np.float32),
        actions=rng.integers(0, 4, size=steps).astype(np.int64),
        rewards=rng.normal(size=steps).astype(np.float32),
    )


def median_us(fn, number: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=128, help="steps per chunk (default 128)")
    parser.add_argument("--obs-dim", type=int, default=8, help="observation size (default 8, LunarLander)")
    parser.add_argument("--number", type=int, default=2000, help="chunks per timed batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed batches; the median is reported")
    args = parser.parse_args()

    obs_space, act_space = lunar_spaces()
    obs_space["shape"] = [args.obs_dim]
    obs_space["low"] = obs_space["high"] = [None] * args.obs_dim
    chunk = make_chunk(args.steps, args.obs_dim)
    message = chunk.to_message()
    frame = P.pack(message)
    as_json = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in message.items()}
    json_frame = json.dumps(as_json).encode()

    schema = P.ChunkSchema.from_spaces(observation_space=obs_space, action_space=act_space)
    results = {
        "pack_us": median_us(lambda: P.pack(chunk.to_message()), args.number, args.repeats),
        "unpack_validate_us": median_us(
            lambda: P.decode_chunk(P.unpack(frame), schema=schema),
            args.number,
            args.repeats,
        ),
        "json_dumps_us": median_us(lambda: json.dumps(as_json), max(1, args.number // 10), args.repeats),
        "frame_bytes": len(frame),
        "json_bytes": len(json_frame),
    }
    results["decoded_chunks_per_s"] = 1e6 / results["unpack_validate_us"]
    results["transitions_per_s_decode"] = results["decoded_chunks_per_s"] * args.steps
    for key, value in results.items():
        print(f"{key:>26}: {value:,.1f}")
    print(json.dumps({"steps": args.steps, "obs_dim": args.obs_dim, **{k: round(v, 2) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
