"""Orchestration: parse options, build the world, run the selected cases, print the figures."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time

from hostile import cases  # noqa: F401 - registers every case
from hostile.registry import CATEGORIES, REGISTRY
from hostile.runner import RSS_BOUND_MIB, STALL_BOUND_MS, Probe, progress, run_case

DOC = """Hostile clients and browsers against the real platform (issue 12, "Open to strangers").

Starts a throw-away platform (harness.Sandbox: embedded Redis, SQLite, the real uvicorn serving
portal.asgi) and runs each case against it, one at a time, each with its own campaign, volunteer and
machine token. A case is aimed at one check; whether it GOT THROUGH is judged by reading Redis, the
database and the public API afterwards (stream contents and sizes, counters, evaluation hashes,
campaign figures, leaderboards, strict JSON), or for the client-side cases by what the real
client_app did; a refusal alone proves nothing. Per case: refused, got_through, a traceback in the
server's log, the relay process's RSS growth (psutil) and its event-loop stall (a websocket ping
every 20 ms, and /healthz, while the case runs). Cases marked as cost-bounded also get through when
they grow the relay by more than {rss:g} MiB or stall it longer than {stall:g} ms.

Progress goes to stderr; the last line of stdout is JSON: cases, categories, refused, got_through,
tracebacks, errors, max_rss_growth_mib, max_loop_stall_ms, by_category, through (ids), errored (ids),
results (per case). Exit status 0 when no case errored (cases that get through are reported, not
fatal: the figure to drive to 0 is got_through).

Cases (id, one line each):
{cases}
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/hostile.py",
        description=DOC.format(rss=RSS_BOUND_MIB, stall=STALL_BOUND_MS, cases=REGISTRY.describe()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", choices=list(CATEGORIES), help="run one category")
    parser.add_argument("--case", action="append", default=[], help="run this case id (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--quick", action="store_true", help="about one case per category (CI smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and the server log")
    return parser.parse_args(argv)


def summarise(results: list, seconds: float) -> dict:
    by_category: dict[str, dict] = {}
    for r in results:
        c = by_category.setdefault(r.category, {"cases": 0, "refused": 0, "got_through": 0, "tracebacks": 0,
                                                "errors": 0, "through": []})
        c["cases"] += 1
        c["refused"] += r.refused
        c["got_through"] += r.got_through
        c["tracebacks"] += r.traceback
        c["errors"] += r.error is not None
        if r.got_through:
            c["through"].append(r.id)
    return {
        "cases": len(results),
        "categories": len(by_category),
        "refused": sum(r.refused for r in results),
        "got_through": sum(r.got_through for r in results),
        "tracebacks": sum(r.traceback for r in results),
        "errors": sum(r.error is not None for r in results),
        "max_rss_growth_mib": max((r.rss_growth_mib for r in results), default=0.0),
        "max_loop_stall_ms": max((r.loop_stall_ms for r in results), default=0.0),
        "max_healthz_ms": max((r.healthz_ms for r in results), default=0.0),
        "bounds": {"rss_growth_mib": RSS_BOUND_MIB, "loop_stall_ms": STALL_BOUND_MS},
        "wall_s": round(seconds, 1),
        "by_category": by_category,
        "through": [r.id for r in results if r.got_through],
        "errored": [r.id for r in results if r.error],
        "with_traceback": [r.id for r in results if r.traceback],
        "results": [r.__dict__ for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print(REGISTRY.describe().strip())
        return 0
    # The hostile clients' own library complains when the server cuts them off: that is the point.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    selected = REGISTRY.select(only=args.only, quick=args.quick)
    if args.case:
        selected = [c for c in REGISTRY.cases if c.id in args.case]
    world = None

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        from hostile.world import World

        t0 = time.perf_counter()
        world = World(keep=args.keep)
        world.start()
        progress(f"server on port {world.web.port}; {len(selected)} cases")
        probe_campaign = world.campaign()
        probe = Probe(world, world.token(probe_campaign)[1])
        probe.start()
        results = []
        for i, case in enumerate(selected, 1):
            result = run_case(world, probe, case)
            results.append(result)
            progress(f"{i:>3}/{len(selected)} {result.line()}")
        probe.stop_flag.set()
        out = summarise(results, time.perf_counter() - t0)
        progress(f"{out['cases']} cases: {out['refused']} refused, {out['got_through']} got through, "
                 f"{out['tracebacks']} with tracebacks, {out['errors']} errors")
        print(json.dumps(out), flush=True)
        return 1 if out["errors"] else 0
    except KeyboardInterrupt:
        progress("interrupted: cleaning up")
        return 130
    finally:
        if world is not None:
            world.stop(timeout=10)
            if args.keep:
                progress(f"kept {world.tmp}")


if __name__ == "__main__":
    sys.exit(main())
