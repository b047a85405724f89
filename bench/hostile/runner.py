"""Running cases one at a time against the world, with the cost of each measured.

While a case runs, ``Probe`` (a thread) pings the relay over a websocket of its own every 20 ms —
a ping is answered by the server's event loop itself, so its latency is the loop's stall — and GETs
``/healthz`` every 100 ms (the Django path through the same loop), and samples the server's RSS
(psutil). A case's cost: its peak RSS over the RSS before it, its worst ping and healthz latency,
and whether the server's log gained a traceback.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass

import psutil

from hostile.registry import Case, Verdict
from hostile.world import World

RSS_BOUND_MIB = 64.0  # a case that grows the relay process more than this got through (cost-bounded cases)
STALL_BOUND_MS = 500.0  # ... or stalls its event loop longer than this


def progress(message: str) -> None:
    print(f"[hostile {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Probe(threading.Thread):
    def __init__(self, world: World, token: str):
        super().__init__(name="hostile-probe", daemon=True)
        self.world, self.token = world, token
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.ping_ms = 0.0
            self.healthz_ms = 0.0
            self.baseline_rss = self.peak_rss = self.rss()

    def rss(self) -> int:
        try:
            return psutil.Process(self.world.web.pid).memory_info().rss
        except psutil.Error:
            return 0

    def _connect(self):
        try:
            return self.world.ws_connect(self.token)
        except Exception:
            return None

    def run(self) -> None:
        ws, i = None, 0
        while not self.stop_flag.is_set():
            i += 1
            if ws is None:
                ws = self._connect()
            if ws is not None:
                t0 = time.perf_counter()
                try:
                    ws.ping().wait(5)
                    ms = (time.perf_counter() - t0) * 1000
                except Exception:
                    ms, ws = (time.perf_counter() - t0) * 1000, None
                with self.lock:
                    self.ping_ms = max(self.ping_ms, ms)
            if i % 5 == 0:
                t0 = time.perf_counter()
                try:
                    self.world.http("/healthz", timeout=5)
                except Exception:
                    pass
                with self.lock:
                    self.healthz_ms = max(self.healthz_ms, (time.perf_counter() - t0) * 1000)
            rss = self.rss()
            with self.lock:
                self.peak_rss = max(self.peak_rss, rss)
            time.sleep(0.02)


@dataclass
class CaseResult:
    id: str
    category: str
    refused: bool
    got_through: bool
    traceback: bool
    error: str | None
    rss_growth_mib: float
    loop_stall_ms: float
    healthz_ms: float
    seconds: float
    note: str

    def line(self) -> str:
        mark = "ERROR" if self.error else ("THROUGH" if self.got_through else ("refused" if self.refused else "passed"))
        extra = " tb" if self.traceback else ""
        return (f"{self.id:<48} {mark:<8}{extra} rss+{self.rss_growth_mib:.0f}MiB stall {self.loop_stall_ms:.0f}ms "
                f"{self.seconds:.1f}s {self.error or self.note}")[:220]


def run_case(world: World, probe: Probe, case: Case) -> CaseResult:
    log_before = len(world.web.output())
    time.sleep(0.03)
    probe.reset()
    box: dict = {}

    def target() -> None:
        try:
            box["verdict"] = case.fn(world)
        except BaseException as exc:  # noqa: BLE001 - a case that raises is reported, never fatal
            box["error"] = f"{type(exc).__name__}: {exc}"[:300]
            box["trace"] = traceback.format_exc()

    t0 = time.perf_counter()
    thread = threading.Thread(target=target, name=f"case-{case.id}", daemon=True)
    thread.start()
    thread.join(case.budget_s)
    seconds = time.perf_counter() - t0
    time.sleep(0.1)  # let the server's log and memory settle
    error = box.get("error")
    if thread.is_alive():
        error = f"still running after its budget of {case.budget_s:.0f} s"
    verdict: Verdict = box.get("verdict") or Verdict(False, False, "")
    with probe.lock:
        rss_growth = max(0.0, (probe.peak_rss - probe.baseline_rss) / 2**20)
        stall, healthz = probe.ping_ms, probe.healthz_ms
    log = world.web.output()[log_before:]
    tb = "Traceback" in log
    got, note = verdict.got_through, verdict.note
    if case.cost_bound and (rss_growth > RSS_BOUND_MIB or stall > STALL_BOUND_MS):
        got = True
        note = f"{note}; cost past bound (rss +{rss_growth:.0f} MiB, stall {stall:.0f} ms)".lstrip("; ")
    if not world.web.running():
        got, note = True, f"{note}; the server died".lstrip("; ")
        world.procs.remove(world.web)
        world.start()
        probe.reset()
    return CaseResult(case.id, case.category, verdict.refused, got, tb, error, round(rss_growth, 1),
                      round(stall, 1), round(healthz, 1), round(seconds, 2), note[:300])
