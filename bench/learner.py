#!/usr/bin/env python
"""Learner throughput: gradient updates per second when fed through Redis, next to a bare loop.

"Fed through Redis" is the real learner path: an embedded Redis (or --redis-url), a throw-away SQLite
database and media folder, a running CartPole-v1 campaign, a feeder process that XADDs packed chunks
into the campaign's stream as the relay does (keeping a backlog, so the learner is never starved), and
``portal.training.runner.learner_run(campaign_id=C, max_seconds=D)``. Its rate is read from the learner's
stats hash (``updates`` and ``heartbeat``, written about once a second), from its first update to its time
limit: start-up, refilling the buffer and the exit checkpoint are left out.

The baseline is the same maths without the plumbing: the same DQN class, config, batch size, replay
buffer kind and device, sampling, updating and re-prioritising on a pre-filled buffer in a tight loop
for the same D seconds.

They alternate (baseline, learner, baseline, learner, ...) --repeats times. Progress goes to stderr
one line per measurement; the last line of stdout is JSON with the medians: ``updates_per_s``,
``baseline_updates_per_s`` and ``ratio`` (learner / baseline).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import Sandbox  # noqa: E402

BACKLOG_CHUNKS = 64  # the feeder keeps at least this many unread chunks in the stream


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_frames(count: int, steps: int, seed: int = 0) -> list[bytes]:
    """Packed CartPole chunks (the bytes the relay stores), every third one ending its episode."""
    from client_app.protocol import Chunk, pack

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        terminated = i % 3 == 2
        chunk = Chunk(
            id=f"bench-{i}",
            model_version=0,
            obs=(rng.normal(size=(steps + 1, 4)) * 0.1).astype(np.float32),
            actions=rng.integers(0, 2, size=steps).astype(np.int64),
            rewards=np.ones(steps, dtype=np.float32),
            terminated=terminated,
            episode_return=float(steps) if terminated else None,
            episode_length=steps if terminated else None,
        )
        frames.append(pack(chunk.to_message()))
    return frames


def feed(redis_url: str, stream: str, steps: int, stop: multiprocessing.synchronize.Event) -> None:
    """The feeder process: top the stream up to BACKLOG_CHUNKS unread entries, every 20 ms."""
    import redis

    client = redis.Redis.from_url(redis_url)
    frames = make_frames(32, steps)
    i = 0
    while not stop.is_set():
        missing = BACKLOG_CHUNKS - client.xlen(stream)
        if missing > 0:
            pipe = client.pipeline(transaction=False)
            for _ in range(missing):
                pipe.xadd(stream, {"c": frames[i % len(frames)], "m": "bench-machine"})
                i += 1
            pipe.execute()
        time.sleep(0.02)


def measure_learner(campaign_id: int, seconds: float) -> float:
    """Run the real learner for ``seconds``; its steady rate from the stats hash it writes."""
    from portal.core.redis import get_redis
    from portal.training.runner import learner_run
    from trainer.keys import CampaignKeys

    client = get_redis()
    key = CampaignKeys(campaign_id).learner
    client.delete(key)
    snapshots: list[tuple[float, int]] = []
    done = threading.Event()

    def watch() -> None:
        seen = None
        while not done.is_set():
            heartbeat, updates = client.hmget(key, "heartbeat", "updates")
            if heartbeat is not None and heartbeat != seen:
                seen = heartbeat
                snapshots.append((float(heartbeat), int(updates)))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.time()
    outcome = learner_run(campaign_id=campaign_id, max_seconds=seconds)
    done.set()
    watcher.join()
    if outcome != "time_limit":
        raise RuntimeError(f"the learner stopped with {outcome!r}")
    # From the first snapshot after learning began to the last one before the time limit.
    first_updates = snapshots[0][1] if snapshots else 0
    steady = [(t, u) for t, u in snapshots if u > first_updates and t <= started + seconds]
    if len(steady) < 2:
        raise RuntimeError(f"too few stats snapshots to measure ({len(steady)}); use a longer --duration")
    (t0, u0), (t1, u1) = steady[0], steady[-1]
    return (u1 - u0) / (t1 - t0)


def measure_baseline(env_id: str, hyperparams: dict, steps: int, seconds: float) -> float:
    """The same DQN and replay maths on a pre-filled buffer, in a tight loop."""
    from client_app.policy import QNetworkSpec
    from client_app.protocol import decode_stored_chunk
    from portal.training.runner import learner_settings
    from trainer.config import config_for
    from trainer.dqn import DQN
    from trainer.learner import learner_device
    from trainer.replay import replay_buffer_for

    config = config_for(env_id, hyperparams)
    spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=tuple(config.hidden), dueling=config.dueling)
    dqn = DQN(spec, config, device=learner_device(learner_settings()))
    buffer = replay_buffer_for(config, obs_dim=4)
    for frame in make_frames(max(1, 2 * config.learning_starts // steps), steps):
        buffer.add_chunk(decode_stored_chunk(frame))
    rng = np.random.default_rng(0)

    def step() -> None:
        batch = buffer.sample(config.batch_size, rng, beta=dqn.beta())
        update = dqn.update(batch)
        buffer.update_priorities(batch.indices, update.td_errors)

    for _ in range(20):  # warm-up, as the learner's first updates are left out of its rate
        step()
    updates = 0
    start = time.perf_counter()
    until = start + seconds
    while time.perf_counter() < until:
        step()
        updates += 1
    return updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="baseline/learner pairs; medians reported")
    parser.add_argument(
        "--redis-url", help="use this Redis (its database is flushed) instead of an embedded one"
    )
    parser.add_argument("--steps", type=int, default=128, help="steps per chunk (default 128)")
    parser.add_argument(
        "--samples-per-update",
        type=float,
        default=0.5,
        help="the campaign's replay ratio (default 0.5: the learner reads, but is never starved)",
    )
    parser.add_argument(
        "--hyperparams",
        default="{}",
        help="JSON overrides of the campaign's config, e.g. '{\"prioritized\": false}'",
    )
    args = parser.parse_args()

    # Its database is flushed below, once Django is set up.
    sandbox = Sandbox(redis_url=args.redis_url or None, flush=False, prefix="soulsai-bench-learner-")
    redis_url = sandbox.redis_url
    sandbox.setup_django()

    from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
    from portal.core.redis import get_redis
    from trainer.config import config_for
    from trainer.keys import CampaignKeys

    get_redis().flushdb()
    env_id = "CartPole-v1"
    hyperparams = {"samples_per_update": args.samples_per_update, **json.loads(args.hyperparams)}
    campaign = campaign_launch(
        campaign=campaign_create(slug="bench", name="Learner bench", env_id=env_id, hyperparams=hyperparams)
    )
    campaign_redis_sync(campaign=campaign)
    config = config_for(env_id, hyperparams)
    progress(
        f"campaign {campaign.id}: {env_id}, batch {config.batch_size}, hidden {list(config.hidden)}, "
        f"n_step {config.n_step}, prioritized {config.prioritized}, samples_per_update "
        f"{config.samples_per_update}, publish every {config.publish_every_updates} updates / "
        f"{config.publish_min_seconds} s, torch threads {os.environ.get('SOULSAI_TORCH_THREADS', '1')}"
    )

    stop = multiprocessing.get_context("spawn").Event()
    feeder = multiprocessing.get_context("spawn").Process(
        target=feed, args=(redis_url, CampaignKeys(campaign.id).stream, args.steps, stop), daemon=True
    )
    feeder.start()
    learner_rates, baseline_rates = [], []
    try:
        for i in range(args.repeats):
            baseline_rates.append(measure_baseline(env_id, hyperparams, args.steps, args.duration))
            progress(f"[{i + 1}/{args.repeats}] baseline {baseline_rates[-1]:.1f} updates/s")
            learner_rates.append(measure_learner(campaign.id, args.duration))
            progress(f"[{i + 1}/{args.repeats}] learner  {learner_rates[-1]:.1f} updates/s")
    finally:
        stop.set()
        feeder.join(5)
        sandbox.stop()

    learner, baseline = statistics.median(learner_rates), statistics.median(baseline_rates)
    print(
        json.dumps(
            {
                "updates_per_s": round(learner, 1),
                "baseline_updates_per_s": round(baseline, 1),
                "ratio": round(learner / baseline, 3),
                "learner_runs": [round(r, 1) for r in learner_rates],
                "baseline_runs": [round(r, 1) for r in baseline_rates],
                "duration_s": args.duration,
                "env_id": env_id,
                "config": {
                    k: config.to_dict()[k]
                    for k in (
                        "batch_size",
                        "hidden",
                        "n_step",
                        "prioritized",
                        "samples_per_update",
                        "publish_every_updates",
                        "publish_min_seconds",
                    )
                },
            }
        )
    )


if __name__ == "__main__":
    main()
