#!/usr/bin/env python
"""Learner throughput: gradient updates per second when fed through Redis, next to a bare loop.

"Fed through Redis" is the real learner path: an embedded Redis (or --redis-url), a throw-away SQLite
database and media folder, a running DQN campaign on --env (default CartPole-v1) with that env's
default config, a feeder process that XADDs packed chunks (played in the real env with random allowed
actions, as a client records them; for a guided campaign, as the Iudex defaults are, the guide's share
of the episodes played by the scripted player and flagged ``guided``, so that the learner's check of
them and its margin loss count) into the campaign's stream as the relay does (keeping a backlog,
so the learner is never starved), and
``portal.training.runner.learner_run(campaign_id=C, max_seconds=D)``. Its rate is read from the learner's
stats hash (``updates`` and ``heartbeat``, written about once a second), from its first update to its time
limit: start-up, refilling the buffer and the exit checkpoint are left out.

The baseline is the same maths without the plumbing: the same DQN class, config, batch size, replay
buffer kind and device, sampling, updating and re-prioritising on a pre-filled buffer in a tight loop
for the same D seconds.

They alternate (baseline, learner, baseline, learner, ...) --repeats times. Progress goes to stderr
one line per measurement; the last line of stdout is JSON with the medians: ``updates_per_s``,
``baseline_updates_per_s`` and ``ratio`` (learner / baseline), the baseline's updates per second of
CPU time (``baseline_cpu_updates_per_s``: steadier than wall time on a shared machine), and

    volunteers_served = updates_per_s * samples_per_update / client_sps

how many clients playing --client-sps steps/s (default 10, the game at 1x) the learner absorbs at
the campaign's replay ratio without slowing them down (by default the campaign's own, e.g. 2 for
the Iudex DQN defaults: ``--env soulsai/IudexArena-v0``).
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


def make_chunks(env_id: str, total_steps: int, chunk_steps: int, seed: int = 0, guide_share: float = 0.0) -> list:
    """Chunks of ``env_id`` played with uniformly random allowed actions, cut as a client cuts them;
    ``guide_share`` of the episodes (a guided Iudex campaign's) played by the scripted player instead,
    and flagged ``guided``, as clients play them (the learner then trains its margin loss on them)."""
    from client_app import iudex
    from client_app.arena.scripted import scripted_action
    from client_app.chunker import Chunker
    from client_app.envs import declared_spaces, make_env
    from client_app.masks import action_mask
    from client_app.spaces import action_count

    observation_space, action_space = declared_spaces(env_id)
    n_actions, start = action_count(action_space), int(action_space.get("start", 0))
    env = make_env(env_id)
    chunker = Chunker(chunk_steps=chunk_steps, observation_space=observation_space, n_actions=n_actions)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    chunker.start_episode(obs, action_mask(info, n_actions), guided=bool(rng.random() < guide_share))
    chunks, played = [], 0
    while played < total_steps:
        mask = action_mask(info, n_actions)
        if chunker.guided:
            action = int(scripted_action(info[iudex.RAW_OBS]))
        else:
            action = int(rng.choice(np.flatnonzero(mask) if mask is not None else n_actions)) + start
        obs, reward, terminated, truncated, info = env.step(action)
        played += 1
        chunk = chunker.step(
            action,
            float(reward),
            obs,
            terminated,
            truncated,
            model_version=0,
            mask=action_mask(info, n_actions),
        )
        if chunk is not None:
            chunks.append(chunk)
        if terminated or truncated:
            obs, info = env.reset()
            chunker.start_episode(obs, action_mask(info, n_actions), guided=bool(rng.random() < guide_share))
    env.close()
    return chunks


def make_frames(env_id: str, total_steps: int, chunk_steps: int, seed: int = 0, guide_share: float = 0.0) -> list[bytes]:
    """The same chunks packed, as the relay stores them."""
    from client_app.protocol import pack

    return [pack(c.to_message()) for c in make_chunks(env_id, total_steps, chunk_steps, seed, guide_share)]


def feed(
    redis_url: str,
    stream: str,
    env_id: str,
    steps: int,
    stop: multiprocessing.synchronize.Event,
    guide_share: float = 0.0,
) -> None:
    """The feeder process: top the stream up to BACKLOG_CHUNKS unread entries, every 20 ms."""
    import redis

    client = redis.Redis.from_url(redis_url)
    frames = make_frames(env_id, 32 * steps, steps, guide_share=guide_share)
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


def measure_baseline(
    env_id: str, hyperparams: dict, chunks: list, seconds: float, batch_scale: int = 1
) -> tuple[float, float]:
    """The same agent (DQN, replay buffer, observation normaliser) on a pre-filled buffer, in a tight
    loop: (updates per second of wall time, updates per second of this process's CPU time).
    ``batch_scale`` > 1: large-batch mode held at that many times the batch."""
    from client_app.envs import declared_spaces
    from client_app.spaces import action_count, flat_dim
    from portal.training.runner import learner_settings
    from trainer.agents import DQNAgent
    from trainer.config import config_for
    from trainer.learner import learner_device

    config = config_for(env_id, {**hyperparams, "large_batch_max": batch_scale})
    observation_space, action_space = declared_spaces(env_id)
    agent = DQNAgent(
        config,
        obs_dim=flat_dim(observation_space),
        n_actions=action_count(action_space),
        action_start=int(action_space.get("start", 0)),
        device=learner_device(learner_settings()),
    )
    for chunk in chunks:
        agent.ingest(chunk, current_version=0)
    agent.rng = np.random.default_rng(0)
    agent.batch_scale = batch_scale
    agent.run_samples = 1 << 60  # never waits for data: the replay ratio is the learner's business
    never = lambda: False  # noqa: E731

    # Warm-up, as the learner's first updates are left out of its rate.
    agent.train(time.monotonic() + 3600, lambda: agent.updates >= 20)
    updates = agent.updates
    start, cpu_start = time.perf_counter(), time.process_time()
    until = start + seconds
    while time.perf_counter() < until:
        agent.train(time.monotonic() + 0.1, never)
    updates = agent.updates - updates
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return updates / wall, updates / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="baseline/learner pairs; medians reported")
    parser.add_argument(
        "--redis-url", help="use this Redis (its database is flushed) instead of an embedded one"
    )
    parser.add_argument(
        "--env", default="CartPole-v1", help="the campaign's env, with its DQN defaults (default CartPole-v1)"
    )
    parser.add_argument(
        "--client-sps",
        type=float,
        default=10.0,
        help="a client's env steps/s for volunteers_served (default 10: the game at 1x)",
    )
    parser.add_argument("--steps", type=int, default=128, help="steps per chunk (default 128)")
    parser.add_argument(
        "--large-batch",
        type=int,
        default=0,
        help="also time the bare loop in large-batch mode at this many times the batch (reported apart)",
    )
    parser.add_argument(
        "--samples-per-update",
        type=float,
        default=0.5,
        help="the learner's replay ratio while measured (default 0.5: it reads, but is never starved); "
        "volunteers_served uses the campaign's own",
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
    env_id = args.env
    campaign_config = config_for(env_id, json.loads(args.hyperparams))  # its replay ratio serves clients
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
        f"{config.publish_min_seconds} s, normalize_obs {config.normalize_obs}, torch threads "
        f"{os.environ.get('SOULSAI_TORCH_THREADS', '1')}"
    )

    stop = multiprocessing.get_context("spawn").Event()
    feeder = multiprocessing.get_context("spawn").Process(
        target=feed,
        args=(redis_url, CampaignKeys(campaign.id).stream, env_id, args.steps, stop, config.guide_share_at(0)),
        daemon=True,
    )
    feeder.start()
    # A guided campaign's chunks (the Iudex default) are guided in its share: the margin loss's cost counts.
    chunks = make_chunks(
        env_id, 2 * config.learning_starts + args.steps, args.steps, seed=1, guide_share=config.guide_share_at(0)
    )
    learner_rates, baseline_rates, baseline_cpu_rates = [], [], []
    try:
        for i in range(args.repeats):
            wall, cpu = measure_baseline(env_id, hyperparams, chunks, args.duration)
            baseline_rates.append(wall)
            baseline_cpu_rates.append(cpu)
            progress(f"[{i + 1}/{args.repeats}] baseline {wall:.1f} updates/s ({cpu:.1f} per CPU second)")
            learner_rates.append(measure_learner(campaign.id, args.duration))
            progress(f"[{i + 1}/{args.repeats}] learner  {learner_rates[-1]:.1f} updates/s")
    finally:
        stop.set()
        feeder.join(5)
        sandbox.stop()

    large_batch = None
    if args.large_batch > 1:
        rates = [
            measure_baseline(env_id, hyperparams, chunks, args.duration, batch_scale=args.large_batch)[0]
            for _ in range(args.repeats)
        ]
        rate = statistics.median(rates)
        # Each update counts as large_batch updates of the replay ratio: not comparable with volunteers_served.
        large_batch = {
            "batch_size": args.large_batch * config.batch_size,
            "baseline_updates_per_s": round(rate, 1),
            "volunteers_served": round(
                rate * args.large_batch * campaign_config.samples_per_update / args.client_sps, 1
            ),
        }
        progress(f"large batch x{args.large_batch}: {rates}")
    learner, baseline = statistics.median(learner_rates), statistics.median(baseline_rates)
    served = learner * campaign_config.samples_per_update / args.client_sps
    print(
        json.dumps(
            {
                "updates_per_s": round(learner, 1),
                "baseline_updates_per_s": round(baseline, 1),
                "baseline_cpu_updates_per_s": round(statistics.median(baseline_cpu_rates), 1),
                "ratio": round(learner / baseline, 3),
                "volunteers_served": round(served, 1),
                "large_batch": large_batch,
                "client_sps": args.client_sps,
                "campaign_samples_per_update": campaign_config.samples_per_update,
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
                        "normalize_obs",
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
