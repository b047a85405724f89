#!/usr/bin/env python
"""End-to-end benchmark of the relay: K simulated clients over real websockets, against the real
ASGI server (uvicorn, its own process) and a real Redis (its own process), as in production.

The bench builds its own world in a temporary folder: an embedded Redis on a free port (unless
--redis-url), a throw-away SQLite database with one running campaign whose spaces match --obs-dim
(Box(obs_dim,) float32, Discrete(4)) and one machine token per client. It starts uvicorn, connects
every client (Authorization: Bearer <token>, hello, welcome), then lets each client stream chunks of
--steps steps with a window of --window unacked chunks, either as fast as it can (--rate 0) or paced
at --rate steps/s. A drain plays the learner (XREADGROUP on group "learner", XACK + XDEL), and
checks that every acknowledged chunk id was stored exactly once: `lost` counts acked chunks that never
reached the stream, `duplicated` chunks stored more than once (or acked as duplicates: the bench
never resends). With --notify it publishes real model versions (portal.campaigns.services.model_publish)
during the run and measures how long the `model` notice takes to reach each client.

Measured figures cover only the --duration seconds after --warmup; all clients are connected before
(`connect_s`). Progress goes to stderr; the last line on stdout is JSON:

  clients, steps, obs_dim, window, rate, duration_s, connect_s, chunks_acked, transitions_per_s,
  chunks_per_s, ack_ms_p50, ack_ms_p99, ack_ms_max, rejected, lost, duplicated, waits, errors,
  server_workers, ... and with --notify notice_ms_p50, notice_ms_p95, notice_ms_max, notice_reached.

This script is the orchestration (the world, the measured window, the figures); the simulated
clients are bench/relay_loadgen.py, the drain bench/relay_drain.py, and the processes (Redis,
uvicorn) come from the shared harness (harness.Sandbox).

Examples:
  bench/relay.py --clients 64 --steps 128 --obs-dim 8 --duration 20
  bench/relay.py --clients 1000 --rate 20 --steps 32 --duration 30 --notify
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The load generator and the drain are this script's siblings (bench/ is on sys.path when it runs).
from relay_drain import Drain  # noqa: E402
from relay_loadgen import N_ACTIONS, loadgen_main  # noqa: E402

if TYPE_CHECKING:
    from harness import LiveProcess

# The harness (portal, Django) is imported in main(), not here: a spawned load-generator process
# re-imports this script, and its CPU figures (loadgen_cpu_s) should not include Django's start-up.


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); inf values sort last; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def rounded(value: float | None, digits: int = 2) -> float | None:
    if value is None:
        return None
    if math.isinf(value):
        return None
    return round(value, digits)


# ---------------------------------------------------------------------------------------------------
# The world: a campaign shaped like the chunks, tokens, model versions; CPU accounting.


def create_world(args: argparse.Namespace) -> tuple[int, str, list[str]]:
    """A running campaign matching the chunk shape, and one machine token per client."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from portal.campaigns.models import Campaign
    from portal.campaigns.services import campaign_redis_sync
    from portal.core.redis import get_redis
    from portal.machines.services import token_create
    from trainer.keys import CampaignKeys

    obs_space = {"type": "box", "shape": [args.obs_dim], "dtype": "float32",
                 "low": [None] * args.obs_dim, "high": [None] * args.obs_dim}
    act_space = {"type": "discrete", "n": N_ACTIONS, "start": 0}
    with transaction.atomic():
        user = get_user_model().objects.create(username="bench", email="bench@example.com")
        campaign = Campaign.objects.create(
            slug="relay-bench", name="Relay bench", env_id="LunarLander-v2", status=Campaign.Status.RUNNING,
            observation_space=obs_space, action_space=act_space, chunk_steps=args.steps,
        )
        tokens = [token_create(user=user, campaign=campaign, name=f"bench-{i}")[1] for i in range(args.clients)]
    client = get_redis()
    for key in client.scan_iter(match=f"soulsai:{{c{campaign.id}}}:*"):
        client.delete(key)  # an external Redis may hold an older bench's keys for this campaign id
    campaign_redis_sync(campaign=campaign)
    keys = CampaignKeys(campaign.id)
    client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    return campaign.id, campaign.slug, tokens


def publish_model(campaign_id: int, version: int) -> None:
    """A real model version (file + row + Redis + Channels group_send), as the learner publishes it."""
    from portal.campaigns.services import model_publish

    model_publish(campaign_id=campaign_id, version=version, weights=os.urandom(4096), samples_total=0)


def server_pids(server: LiveProcess) -> list[int]:
    """uvicorn's pid and its children's (the workers), for CPU accounting and profiling."""
    pids = [server.proc.pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except FileNotFoundError:
        pass
    return pids


# ---------------------------------------------------------------------------------------------------
# Orchestration.


async def orchestrate(args: argparse.Namespace, campaign_id: int, tokens: list[str], ws_url: str,
                      redis_url: str, server: LiveProcess, redis_pid: int | None) -> dict:
    from harness.processes import cpu_seconds
    from trainer.keys import CampaignKeys

    keys = CampaignKeys(campaign_id)
    loop = asyncio.get_running_loop()
    ctx = mp.get_context("spawn")
    procs = max(1, min(args.procs, args.clients))
    shared = {
        "steps": args.steps, "obs_dim": args.obs_dim, "window": args.window, "rate": args.rate,
        "episode_every": args.episode_every, "grace": args.grace, "client_loop": args.client_loop,
        "connect_concurrency": max(1, args.connect_concurrency // procs), "run_tag": f"r{os.getpid() % 10000}w",
    }
    workers = []
    for w in range(procs):
        mine = [(i, tokens[i]) for i in range(w, args.clients, procs)]
        parent, child = ctx.Pipe()
        counter = ctx.Value("q", 0, lock=False)
        proc = ctx.Process(target=loadgen_main, args=(w, child, mine, shared, ws_url, counter), daemon=True)
        proc.start()
        workers.append((proc, parent, counter))
    try:
        log(f"connecting {args.clients} clients from {procs} load-generator process(es)")
        readies = await asyncio.gather(*(loop.run_in_executor(None, c.recv) for _, c, _ in workers))
        connect_s = max(r["connect_s"] for r in readies)
        ready = sum(r["ready"] for r in readies)
        log(f"{ready}/{args.clients} clients welcomed in {connect_s:.1f} s")

        drain = Drain(redis_url, keys.stream, keys.group)
        drain_task = asyncio.create_task(drain.run()) if not args.drain_at_end else None

        pids = server_pids(server)
        others = {"redis": [redis_pid] if redis_pid else [], "loadgen": [p.pid for p, _, _ in workers],
                  "bench": [os.getpid()]}
        watched = pids + [pid for group in others.values() for pid in group]
        now = time.time()
        m_start = now + args.warmup
        m_end = m_start + args.duration
        for _, c, _ in workers:
            c.send({"start": m_start, "end": m_end})
        log(f"sending: warm-up {args.warmup:g} s, then {args.duration:g} s measured")

        notices: dict[int, tuple[float, float]] = {}  # version -> (wall time before publish, publish call s)

        async def notifier() -> None:
            version = 0
            at = m_start + min(1.0, args.notify_every / 2)
            while at < m_end - 0.5:
                await asyncio.sleep(max(0.0, at - time.time()))
                version += 1
                t_pub = time.time()
                await asyncio.to_thread(publish_model, campaign_id, version)
                notices[version] = (t_pub, time.time() - t_pub)
                at += args.notify_every

        notify_task = asyncio.create_task(notifier()) if args.notify else None
        cpu_before = None
        last_count, last_t = 0, time.time()
        while time.time() < m_end:
            await asyncio.sleep(min(2.0, max(0.05, m_end - time.time())))
            if cpu_before is None and time.time() >= m_start:
                cpu_before = {pid: cpu_seconds(pid) for pid in watched}
                load_before = os.getloadavg()[0]
                cpu_t0 = time.time()
            count, t = sum(c.value for _, _, c in workers), time.time()
            phase = "warm-up" if t < m_start else "measure"
            log(f"{phase}: {(count - last_count) / max(1e-9, t - last_t):,.0f} chunks/s acked, "
                f"{count:,} acked so far, drain {drain.entries:,}")
            last_count, last_t = count, t
        cpu_after = {pid: cpu_seconds(pid) for pid in watched}
        cpu_span = time.time() - cpu_t0 if cpu_before is not None else None
        if notify_task:
            await notify_task
        log("measurement over: waiting for outstanding acks")
        results = await asyncio.gather(*(loop.run_in_executor(None, c.recv) for _, c, _ in workers))
        if drain_task is None:
            drain_task = asyncio.create_task(drain.run())
        # Everything acked is in the stream by now: drain it to the end.
        from redis.asyncio import Redis

        probe = Redis.from_url(redis_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            backlog = await probe.xlen(keys.stream)
            pending = (await probe.xpending(keys.stream, keys.group))["pending"]
            if backlog == 0 and pending == 0:
                break
            await asyncio.sleep(0.1)
        stats = {k.decode(): int(v) for k, v in (await probe.hgetall(keys.stats)).items()}
        await probe.aclose()
        drain.stop.set()
        await drain_task
    finally:
        for proc, _, _ in workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()

    acked = [cid for r in results for cid in r["acked"]]
    acked_set = set(acked)
    latencies = [x for r in results for x in r["latencies_ms"]]
    window_acks = sum(r["window_acks"] for r in results)
    window_steps = sum(r["window_steps"] for r in results)
    lost = sum(1 for cid in acked_set if cid not in drain.seen)
    duplicated = sum(n - 1 for n in drain.seen.values() if n > 1) + sum(r["dup_acks"] for r in results)
    duplicated += len(acked) - len(acked_set)
    errors = [e for r in results for e in r["errors"]]
    out = {
        "clients": args.clients,
        "steps": args.steps,
        "obs_dim": args.obs_dim,
        "window": args.window,
        "rate": args.rate,
        "duration_s": args.duration,
        "connect_s": round(connect_s, 2),
        "clients_ready": ready,
        "chunks_acked": window_acks,
        "transitions_per_s": round(window_steps / args.duration, 1),
        "chunks_per_s": round(window_acks / args.duration, 1),
        "ack_ms_p50": rounded(percentile(latencies, 50)),
        "ack_ms_p99": rounded(percentile(latencies, 99)),
        "ack_ms_max": rounded(max(latencies) if latencies else None),
        "rejected": sum(r["rejected"] for r in results),
        "reject_codes": {k: v for r in results for k, v in r["reject_codes"].items()},
        "lost": lost,
        "duplicated": duplicated,
        "waits": sum(r["waits"] for r in results),
        "errors": len(errors),
        "error_samples": errors[:5],
        "acked_total": len(acked),
        "stored_total": drain.entries,
        "stored_not_acked": sum(1 for cid in drain.seen if cid not in acked_set),
        "unacked_at_end": sum(r["unacked_at_end"] for r in results),
        "redis_samples": stats.get("samples"),
        "server_workers": args.workers,
        "server": {"ws": args.ws, "loop": args.loop, "http": args.http},
        "loadgen_procs": procs,
        "loadgen_clients_per_proc": [r["clients"] for r in results],
        "loadgen_cpu_s": [round(r["cpu_s"], 1) for r in results],
        "drain": "end" if args.drain_at_end else "live",
    }
    if cpu_span:
        def pct(group: list[int]) -> float:
            return round(100 * sum(cpu_after[p] - cpu_before[p] for p in group) / cpu_span, 1)

        # CPU during the measured window, in % of one core; the rest of the machine is `loadavg`.
        out["cpu_pct"] = {"server": pct(pids), **{name: pct(group) for name, group in others.items()}}
        out["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if args.notify:
        per_client = [n for r in results for n in r["notices"]]
        delays: list[float] = []
        worst_p95 = 0.0
        for version, (t_pub, _) in notices.items():
            mine = [(n[version] - t_pub) * 1000 if version in n else float("inf") for n in per_client]
            delays += mine
            worst_p95 = max(worst_p95, percentile(mine, 95))
        reached = sum(1 for d in delays if d <= 1000)
        out.update(
            notices=len(notices),
            notice_ms_p50=rounded(percentile(delays, 50)),
            notice_ms_p95=rounded(percentile(delays, 95)),
            notice_ms_p95_worst=rounded(worst_p95),
            notice_ms_max=rounded(max(delays) if delays else None),
            notice_reached=round(sum(1 for d in delays if not math.isinf(d)) / len(delays), 4) if delays else None,
            notice_within_1s=round(reached / len(delays), 4) if delays else None,
            publish_ms_max=rounded(max((p * 1000 for _, p in notices.values()), default=None)),
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    load = parser.add_argument_group("load")
    load.add_argument("--clients", type=int, default=64, help="simulated clients, one websocket each (default 64)")
    load.add_argument("--steps", type=int, default=128, help="steps per chunk; also the campaign's chunk_steps "
                      "(default 128)")
    load.add_argument("--obs-dim", type=int, default=8, help="observation size, float32 (default 8: LunarLander)")
    load.add_argument("--rate", type=float, default=0.0, help="steps/s per client; 0 sends as fast as the window "
                      "allows (default 0). Paced clients send a chunk every steps/rate s, with a random phase")
    load.add_argument("--window", type=int, default=8, help="unacked chunks a client keeps in flight (default 8)")
    load.add_argument("--episode-every", type=int, default=4, help="every Nth chunk ends an episode (default 4; "
                      "0: never)")
    load.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    load.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring (default 2)")
    load.add_argument("--grace", type=float, default=15.0, help="seconds to wait for outstanding acks at the end")
    load.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    load.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in progress at once")
    load.add_argument("--client-loop", choices=["uvloop", "asyncio"], default="uvloop",
                      help="event loop of the load generator (default uvloop)")
    note = parser.add_argument_group("model notices")
    note.add_argument("--notify", action="store_true", help="publish model versions during the run and measure how "
                      "long their notice takes to reach the clients (notice_ms_*)")
    note.add_argument("--notify-every", type=float, default=2.0, help="seconds between notices (default 2)")
    srv = parser.add_argument_group("server")
    srv.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    srv.add_argument("--ws", default="auto", help="uvicorn --ws: auto, websockets, websockets-sansio, wsproto")
    srv.add_argument("--loop", default="auto", help="uvicorn --loop: auto, asyncio, uvloop")
    srv.add_argument("--http", default="auto", help="uvicorn --http: auto, h11, httptools")
    srv.add_argument("--redis-url", default="", help="use this Redis instead of starting an embedded one")
    srv.add_argument("--high-water", type=int, default=10**9, help="SOULSAI_STREAM_HIGH_WATER for the server "
                     "(default: never ask clients to wait; the bench measures the relay, not the learner)")
    srv.add_argument("--maxlen", type=int, default=10**8, help="SOULSAI_STREAM_MAXLEN for the server (default: no "
                     "trimming, so that lost chunks are the relay's)")
    srv.add_argument("--drain-at-end", action="store_true", help="read the stream only after the run, so that the "
                     "drain takes no CPU while measuring (default: drain live, like a learner)")
    srv.add_argument("--keep", action="store_true", help="keep the temporary folder (database, uvicorn.log)")
    return parser.parse_args(argv)


def bench_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings of the server (and of this process) on top of the sandbox's."""
    return {
        "DJANGO_SECRET_KEY": "bench-only-secret-key",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "SOULSAI_STREAM_HIGH_WATER": str(args.high_water),
        "SOULSAI_STREAM_MAXLEN": str(args.maxlen),
        "SOULSAI_WS_CLIENTS_PER_ADDRESS": "0",  # every simulated client comes from loopback
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sandbox = None
    stopping = False

    def on_term(signum, frame):  # noqa: ARG001
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        from harness import Sandbox

        # A throw-away world in a temporary folder: an embedded Redis (unless --redis-url, whose other
        # campaigns' keys are left alone), a SQLite database, Django set up in this process.
        sandbox = Sandbox(redis_url=args.redis_url or None, flush=False, keep=args.keep, env=bench_settings(args))
        if sandbox.redis is not None:
            log(f"embedded Redis on port {sandbox.redis.port}")
        sandbox.setup_django()
        t = time.perf_counter()
        campaign_id, _, tokens = create_world(args)
        log(f"campaign {campaign_id} and {len(tokens)} machine tokens made in {time.perf_counter() - t:.1f} s")
        server = sandbox.start_asgi(
            "uvicorn",
            extra=["--log-level", "warning", "--workers", str(args.workers), "--ws", args.ws, "--loop", args.loop,
                   "--http", args.http],
        )
        log(f"uvicorn on port {server.port} (workers={args.workers}, ws={args.ws}, loop={args.loop}, http={args.http})")
        result = asyncio.run(orchestrate(args, campaign_id, tokens, server.ws_url, sandbox.redis_url, server,
                                         sandbox.redis.pid if sandbox.redis else None))
        tail = [line for line in server.output().splitlines() if "Traceback" in line or "ERROR" in line]
        result["server_log_errors"] = len(tail)
        print(json.dumps(result), flush=True)
        return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        if sandbox is not None:
            sandbox.stop(timeout=15)
            if args.keep:
                log(f"kept {sandbox.tmp}")


if __name__ == "__main__":
    sys.exit(main())
