"""The cluster bench's simulated volunteers: bench/relay_loadgen.py's processes on the volunteers' host.

``Volunteers`` spawns the load-generator processes (each enters the volunteers' network namespace
and connects through the proxy with wss, verified against the proxy's CA, its clients spread over
the host's addresses), then runs phases: ``begin()`` starts sending, ``finish()`` ends the phase and
returns the merged figures once every client's spool is acknowledged (or the grace is over).
``acked()`` and ``down()`` are live: acks received so far, clients interrupted right now.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

from relay_loadgen import loadgen_main


def log(message: str) -> None:
    print(f"[cluster-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    from harness.processes import wait_for

    return wait_for(predicate, timeout, what, interval=interval)


def loadgen_args(args: argparse.Namespace, cluster, *, rate: float, drills: bool) -> dict:
    shared = {
        "steps": args.steps, "window": args.window, "rate": rate, "episode_every": 4, "grace": args.grace,
        "client_loop": "uvloop", "connect_concurrency": 50, "cafile": str(cluster.ca),
        "source_addresses": cluster.sources, "netns": cluster.hosts["volunteers"].netns,
    }  # fmt: skip
    if drills:  # CartPole: 4 observations near 0, 2 actions, +1 a step
        shared.update(obs_dim=4, n_actions=2, reward=1.0, obs_scale=0.05)
    else:  # the scale campaign: LunarLander-shaped chunks
        from harness.cluster import OBS_DIM

        shared.update(obs_dim=OBS_DIM, n_actions=4)
    return shared


class Volunteers:
    def __init__(self, *, tokens: list[str], ws_url: str, procs: int, shared: dict, tag: str):
        ctx = mp.get_context("spawn")
        procs = max(1, min(procs, len(tokens)))
        shared = {**shared, "phased": True, "run_tag": f"{tag}{os.getpid() % 1000}w"}
        self.workers = []
        for w in range(procs):
            mine = [(i, tokens[i]) for i in range(w, len(tokens), procs)]
            parent, child = ctx.Pipe()
            counter, down = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)
            proc = ctx.Process(
                target=loadgen_main, args=(w, child, mine, shared, ws_url, counter, down), daemon=True
            )
            proc.start()
            self.workers.append((proc, parent, counter, down))
        self.steps = shared["steps"]
        self.acked_ids: set[str] = set()

    def pids(self) -> list[int]:
        return [proc.pid for proc, *_ in self.workers]

    def wait_ready(self, timeout: float) -> tuple[int, float]:
        """(clients welcomed, seconds the slowest process took to connect all of its clients)."""
        readies = []
        deadline = time.monotonic() + timeout
        for proc, conn, *_ in self.workers:
            while not conn.poll(0.5):
                if not proc.is_alive():
                    raise RuntimeError(f"load generator {proc.pid} exited with {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"clients not connected within {timeout:.0f} s")
            readies.append(conn.recv())
        return sum(r["ready"] for r in readies), max(r["connect_s"] for r in readies)

    def begin(self, start: float, end: float | None = None, *, measure_from: float | None = None) -> None:
        for _, conn, *_ in self.workers:
            conn.send({"start": start, "end": end, "measure_from": measure_from or start})

    def finish(self, end: float | None = None, *, timeout: float = 300) -> dict:
        """End the phase (at ``end``, or now) unless it was begun with an end; the merged figures."""
        if end is not None:
            for _, conn, *_ in self.workers:
                conn.send({"end": end})
        results = []
        deadline = time.monotonic() + timeout
        for proc, conn, *_ in self.workers:
            while not conn.poll(0.5):
                if not proc.is_alive():
                    raise RuntimeError(f"load generator {proc.pid} exited with {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise TimeoutError("the load generators did not finish their phase")
            results.append(conn.recv())
        merged: dict = {"per_proc": results}
        for key in ("window_acks", "window_steps", "rejected", "dup_acks", "waits", "unacked_at_end", "sent",
                    "resent", "reconnects", "still_down", "failed", "clients"):  # fmt: skip
            merged[key] = sum(r[key] for r in results)
        for key in ("acked", "latencies_ms", "errors", "notices", "interruptions"):
            merged[key] = [x for r in results for x in r[key]]
        codes: dict[str, int] = {}
        for r in results:
            for code, n in r["reject_codes"].items():
                codes[code] = codes.get(code, 0) + n
        merged["reject_codes"] = codes
        merged["cpu_s"] = [round(r["cpu_s"], 1) for r in results]
        new = set(merged["acked"])
        merged["acked_twice"] = len(merged["acked"]) - len(new) + len(new & self.acked_ids)
        self.acked_ids |= new
        return merged

    def acked(self) -> int:
        return sum(c.value for *_, c, _ in self.workers)

    def down(self) -> int:
        return sum(d.value for *_, d in self.workers)

    def close(self) -> None:
        for _, conn, *_ in self.workers:
            try:
                conn.send({"stop": True})
            except (OSError, BrokenPipeError):
                pass
        for proc, *_ in self.workers:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
