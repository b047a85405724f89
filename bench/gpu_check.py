#!/usr/bin/env python
"""The learner on a GPU: it takes the device, samples batches in pinned memory, and trains.

A check for a machine with CUDA (CI has none, so the tests cover the CPU path and the refusal of
SOULSAI_DEVICE=cuda where there is no GPU). Prints progress to stderr and JSON on the last line:
``cuda``, ``device_name``, ``pinned`` (the sampled batch's arrays), ``updates`` and ``updates_per_s``
of a DQN agent on synthetic CartPole-shaped chunks, next to the same agent on the CPU. Exits 2 on a
machine without CUDA, 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from client_app.protocol import Chunk  # noqa: E402
from trainer.agents import DQNAgent  # noqa: E402
from trainer.config import DQNConfig  # noqa: E402


def updates_per_s(device: torch.device, seconds: float) -> tuple[DQNAgent, float]:
    config = DQNConfig(buffer_size=50_000, n_step=1, learning_starts=256, batch_size=64, hidden=[256, 256])
    agent = DQNAgent(config, obs_dim=4, n_actions=2, action_start=0, device=device)
    rng = np.random.default_rng(0)
    for i in range(64):
        agent.ingest(
            Chunk(
                id=f"c{i}", model_version=0, obs=rng.normal(size=(129, 4)).astype(np.float32),
                actions=rng.integers(0, 2, 128).astype(np.int64), rewards=np.ones(128, np.float32),
            ),
            current_version=0,
        )  # fmt: skip
    agent.train(time.monotonic() + 1.0, lambda: False)  # warm-up (CUDA kernels, allocator)
    start, before = time.monotonic(), agent.updates
    agent.train(start + seconds, lambda: False)
    return agent, (agent.updates - before) / (time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of updates per device (default 10)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to check", file=sys.stderr)
        print(json.dumps({"cuda": False}))
        return 2
    cuda = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(cuda)}", file=sys.stderr)
    agent, gpu_rate = updates_per_s(cuda, args.seconds)
    batch = agent.buffer.sample(64, agent.rng)
    pinned = torch.from_numpy(batch.obs).is_pinned() and torch.from_numpy(batch.actions).is_pinned()
    _, cpu_rate = updates_per_s(torch.device("cpu"), args.seconds)
    result = {
        "cuda": True, "device_name": torch.cuda.get_device_name(cuda), "pinned": pinned,
        "updates": agent.updates, "diverged": agent.diverged is not None,
        "updates_per_s": round(gpu_rate, 1), "cpu_updates_per_s": round(cpu_rate, 1),
    }  # fmt: skip
    print(json.dumps(result))
    return 0 if pinned and agent.updates > 0 and not result["diverged"] else 1


if __name__ == "__main__":
    sys.exit(main())
