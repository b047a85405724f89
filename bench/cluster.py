#!/usr/bin/env python
"""The production topology under load and under faults, on this one machine as separate hosts.

Starts harness/cluster.py's world (network namespaces made here, root needed: a proxy host with
nginx and TLS, two relay hosts with --asgi-per-host ASGI processes each, the data host with its own
PostgreSQL, Redis (append-only) and SFTP storage, beat and the periodic worker, a learner host and a
standby learner host, a volunteers' host), every role started from deploy/'s systemd units and
environment template. Simulated clients (bench/relay_loadgen.py) connect through the proxy with wss,
reconnect and resend as the real client does. Then the drills (--drills, comma-separated, or all):

- scale: --clients at --rate steps/s, --steps per chunk, for --duration s after --warmup, on a
  campaign whose learner is a drain (as bench/relay.py's: more than one learner trains): ack_ms_p50/
  p99, notice_ms_p95 (model versions published from the data host every --notify-every s), lost and
  duplicated against the stream, CPU per role (% of one core, from /proc).
- relay_kill: one ASGI process SIGKILLed mid-stream (systemd's Restart= brings it back after
  RestartSec): its clients reconnect through the proxy to the others and resend.
- learner_kill: the learner host SIGKILLed; the standby takes over (at most 60 s), versions rise.
- redis_restart: Redis SIGKILLed, down --outage s, started again from its append-only file.
- postgres_restart: PostgreSQL stopped as a crash would, down --outage s, started again.
- proxy_reload: nginx reloaded under load (SIGHUP, as `nginx -s reload`); its old workers close
  their websockets after worker_shutdown_timeout, and those clients reconnect.

The fault drills run --drill-clients at --drill-rate on a CartPole campaign the real learners train:
each drill is a phase that ends once every client's chunks are acknowledged and the learner has read
every stream entry, and reports lost (acknowledged samples the learners did not ingest) and
duplicated (ingested more than once), its recovery time (the fault until the last interrupted client
was acknowledged again) and what clients saw meanwhile (refusal codes, reconnects).

Progress goes to stderr; the last line on stdout is JSON. The exit status is 1 when a drill lost or
duplicated anything or did not recover. Every namespace and process is removed at the end, on a
failure or Ctrl-C too.

Examples:
  bench/cluster.py --clients 300 --duration 10 --drills all
  bench/cluster.py --clients 5000 --rate 10 --steps 32 --duration 60 --drills all
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from cluster_volunteers import Volunteers, loadgen_args, log  # noqa: E402

FAULT_DRILLS = ("relay_kill", "learner_kill", "redis_restart", "postgres_restart", "proxy_reload")
DRILLS = ("scale", *FAULT_DRILLS)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; inf values sort last; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or math.isinf(value) else round(value, digits)


# ---------------------------------------------------------------------------------------------------
# CPU per role


class CpuMeter:
    """CPU seconds of each role's processes between ``start()`` and ``stop()``, as % of one core."""

    def __init__(self, groups):
        self.groups = groups  # () -> {role: [pids]}

    def start(self) -> None:
        from harness.processes import cpu_seconds

        self.t0 = time.monotonic()
        self.before = {role: {p: cpu_seconds(p) for p in pids} for role, pids in self.groups().items()}

    def stop(self) -> dict[str, float]:
        from harness.processes import cpu_seconds

        span = time.monotonic() - self.t0
        out = {}
        for role, pids in self.groups().items():
            before = self.before.get(role, {})
            used = sum(cpu_seconds(p) - before.get(p, 0.0) for p in pids)
            out[role] = round(100 * used / span, 1)
        return out


# ---------------------------------------------------------------------------------------------------
# scale


def scale_drill(args: argparse.Namespace, cluster) -> dict:
    from relay_drain import Drain

    from harness.processes import LiveProcess
    from trainer.keys import CampaignKeys

    keys = CampaignKeys(cluster.made["scale"])
    procs = args.procs or max(1, min(4, args.clients // 1500))
    volunteers = Volunteers(tokens=cluster.made["scale_tokens"], ws_url=cluster.ws_url, procs=procs,
                            shared=loadgen_args(args, cluster, rate=args.rate, drills=False), tag="s")  # fmt: skip
    notifier: LiveProcess | None = None
    try:
        log(f"scale: connecting {args.clients} clients through the proxy from {procs} load generator(s)")
        ready, connect_s = volunteers.wait_ready(timeout=max(300, args.clients / 4))
        log(f"scale: {ready}/{args.clients} clients welcomed in {connect_s:.1f} s")
        m_start = time.time() + args.warmup
        m_end = m_start + args.duration
        volunteers.begin(time.time(), m_end, measure_from=m_start)
        volunteers_times = {"start": m_start}
        notifier = cluster.start_notifier(m_start + 1, m_end - 1, args.notify_every)

        async def drain_and_watch() -> tuple[Drain, dict]:
            drain = Drain(cluster.redis_url, keys.stream, keys.group)
            task = asyncio.create_task(drain.run())
            meter = CpuMeter(lambda: {**cluster.role_pids(), "loadgen": volunteers.pids(), "bench": [os.getpid()],
                                      "notifier": [notifier.pid]})  # fmt: skip
            last, last_t, cpu = 0, time.time(), None
            while time.time() < m_end:
                await asyncio.sleep(min(5.0, max(0.05, m_end - time.time())))
                if cpu is None and time.time() >= volunteers_times["start"]:
                    meter.start()
                    cpu = {}
                count, t = volunteers.acked(), time.time()
                log(f"scale: {(count - last) / max(1e-9, t - last_t):,.0f} chunks/s acked, {count:,} so far, "
                    f"drain {drain.entries:,}, {volunteers.down()} clients interrupted")  # fmt: skip
                last, last_t = count, t
            cpu = meter.stop() if cpu is not None else {}
            return drain, task, cpu

        async def finish(drain, task) -> dict:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, volunteers.finish)
            from redis.asyncio import Redis

            probe = Redis.from_url(cluster.redis_url)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if (
                    await probe.xlen(keys.stream) == 0
                    and (await probe.xpending(keys.stream, keys.group))["pending"] == 0
                ):
                    break
                await asyncio.sleep(0.1)
            await probe.aclose()
            drain.stop.set()
            await task
            return result

        async def run() -> tuple:
            drain, task, cpu = await drain_and_watch()
            result = await finish(drain, task)
            return drain, cpu, result

        drain, cpu, result = asyncio.run(run())
    finally:
        volunteers.close()
        if notifier is not None:
            notifier.stop(timeout=10)

    acked = result["acked"]
    acked_set = set(acked)
    lost = sum(1 for cid in acked_set if cid not in drain.seen)
    duplicated = sum(n - 1 for n in drain.seen.values() if n > 1) + (len(acked) - len(acked_set))
    latencies = result["latencies_ms"]
    published, publish_s = {}, []
    for line in notifier.output().splitlines():
        if line.startswith("PUBLISHED "):
            _, version, t, took = line.split()
            published[int(version)] = float(t)
            publish_s.append(float(took))
    delays = []
    for version, t_pub in published.items():
        delays += [(n[version] - t_pub) * 1000 if version in n else float("inf") for n in result["notices"]]
    out = {
        "clients": args.clients, "clients_ready": ready, "connect_s": round(connect_s, 1), "rate": args.rate,
        "steps": args.steps, "duration_s": args.duration,
        "chunks_acked": result["window_acks"], "chunks_per_s": round(result["window_acks"] / args.duration, 1),
        "transitions_per_s": round(result["window_steps"] / args.duration, 1),
        "ack_ms_p50": rounded(percentile(latencies, 50)), "ack_ms_p99": rounded(percentile(latencies, 99)),
        "ack_ms_max": rounded(max(latencies) if latencies else None),
        "notices": len(published), "notice_ms_p50": rounded(percentile(delays, 50)),
        "notice_ms_p95": rounded(percentile(delays, 95)),
        "publish_ms_max": rounded(max(publish_s) * 1000 if publish_s else None),
        "notice_reached": round(sum(1 for d in delays if not math.isinf(d)) / len(delays), 4) if delays else None,
        "lost": lost, "duplicated": duplicated, "acked_total": len(acked_set), "stored_total": drain.entries,
        "unacked_at_end": result["unacked_at_end"], "rejected": result["rejected"],
        "reject_codes": result["reject_codes"], "waits": result["waits"], "reconnects": result["reconnects"],
        "errors": len(result["errors"]), "error_samples": result["errors"][:5],
        "cpu_pct": cpu, "loadgen_procs": procs, "loadavg_1m": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    out["ok"] = lost == 0 and duplicated == 0 and ready == args.clients
    return out


# ---------------------------------------------------------------------------------------------------
# fault drills


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    drills = DRILLS if args.drills == "all" else tuple(d.strip() for d in args.drills.split(",") if d.strip())
    unknown = sorted(set(drills) - set(DRILLS))
    if unknown:
        print(f"unknown drills {unknown}: choose from {', '.join(DRILLS)} or all", file=sys.stderr)
        return 2
    from harness.cluster import Cluster, missing

    why = missing()
    if why:
        print(f"cannot run the cluster here: {why}", file=sys.stderr)
        return 2

    def on_term(signum, frame):  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    folder = Path(tempfile.mkdtemp(prefix="soulsai-cluster-"))
    cluster = Cluster(folder, asgi_per_host=args.asgi_per_host, proxy_drain_s=args.proxy_drain_s)
    faults = [d for d in drills if d in FAULT_DRILLS]
    result: dict = {"drills": {}}
    try:
        cluster.start(scale_clients=args.clients if "scale" in drills else 0,
                      drill_clients=args.drill_clients if faults else 0, steps=args.steps)  # fmt: skip
        result["topology"] = {
            "hosts": {name: host.address for name, host in cluster.hosts.items()}, "data_host": cluster.data,
            "asgi_processes": len(cluster.asgi_roles()), "client_addresses": len(cluster.sources),
        }  # fmt: skip
        if "scale" in drills:
            result["drills"]["scale"] = scale_drill(args, cluster)
            log(f"scale: {json.dumps(result['drills']['scale'])}")
        if faults:
            from cluster_drills import run_fault_drills

            result["drills"].update(run_fault_drills(args, cluster, faults))
        result["role_log_tracebacks"] = cluster.errors_in_logs()
        result["ok"] = all(d.get("ok") for d in result["drills"].values())
        print(json.dumps(result), flush=True)
        return 0 if result["ok"] else 1
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        cluster.close()
        if args.keep:
            log(f"kept {folder} (role logs in logs/)")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--drills", default="all", help=f"comma-separated, from {', '.join(DRILLS)}; or all (default)"
    )
    scale = parser.add_argument_group("scale")
    scale.add_argument(
        "--clients", type=int, default=300, help="simulated clients of the scale drill (default 300)"
    )
    scale.add_argument(
        "--rate", type=float, default=10.0, help="steps/s per client (default 10: the game's pace)"
    )
    scale.add_argument("--steps", type=int, default=32, help="steps per chunk, both campaigns (default 32)")
    scale.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds of the scale drill (default 20)"
    )
    scale.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before measuring (default 5)"
    )
    scale.add_argument(
        "--notify-every", type=float, default=2.0, help="seconds between model versions (default 2)"
    )
    scale.add_argument(
        "--procs",
        type=int,
        default=0,
        help="load-generator processes (default: one per 1,500 clients, 1 to 4)",
    )
    drill = parser.add_argument_group("fault drills")
    drill.add_argument(
        "--drill-clients", type=int, default=200, help="simulated clients of the fault drills (default 200)"
    )
    drill.add_argument(
        "--drill-rate",
        type=float,
        default=3.0,
        help="steps/s per client in the fault drills, within one CPU learner's pace (default 3)",
    )
    drill.add_argument(
        "--drill-s", type=float, default=4.0, help="seconds of load before each fault (default 4)"
    )
    drill.add_argument(
        "--outage", type=float, default=3.0, help="seconds Redis and PostgreSQL stay down (default 3)"
    )
    topo = parser.add_argument_group("topology")
    topo.add_argument(
        "--asgi-per-host", type=int, default=1,
        help="ASGI processes per relay host (default 1: docs/deployment.md runs one per core, and this "
        "machine's cores are shared by every host)",
    )
    topo.add_argument(
        "--window", type=int, default=8, help="unacked chunks a client keeps in flight (default 8)"
    )
    topo.add_argument(
        "--grace", type=float, default=120.0, help="seconds a phase waits for every chunk's ack"
    )
    topo.add_argument(
        "--proxy-drain-s", type=int, default=30,
        help="nginx's worker_shutdown_timeout: after a reload, old workers close their websockets this "
        "many seconds later and those clients reconnect (default 30, as docs/deployment.md sets it)",
    )
    topo.add_argument("--keep", action="store_true", help="keep the temporary folder (every role's log)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
