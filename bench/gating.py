#!/usr/bin/env python
"""What the roll-out gate costs an on-policy campaign: policy lag and stale samples, gate on and off.

Two real stacks side by side, started at once (bench/stack.py: each its own embedded Redis, SQLite
database, uvicorn relay, Celery worker with beat running the learner, and --clients real clients),
the same in every respect but ``SOULSAI_ROLLOUT_GATE`` (1 in one, 0 in the other): a PPO CartPole-v1
campaign (its learner drops chunks played by a model more than ``max_staleness``, 1, versions old;
the relay refuses those more than --max-policy-lag old, 0: no limit) whose checkpoints are evaluated
often (--eval-every samples, so that the gate has checkpoints to judge in minutes), and clients
paced to --sps steps/s that volunteers' way come and go: each is stopped and started again every
--restart-every seconds (staggered), since the gate changes only what a client is welcomed with.
The figures count from the end of a --warmup (the first models reach the clients); the checkpoints
listed are all of the run's.

Per mode, from the learner's ``policy_lag_samples`` (every sample it read, by versions behind its
current version when read, kept or dropped as stale), the relay's refusals and the checkpoints:
``lag_p50`` / ``lag_p95`` / ``lag_max`` of the samples kept, ``dropped_share`` (dropped by the learner
as stale, of all it read) and ``relay_refused_chunks`` (refused as too old), ``played_lag`` (every
sample read by versions behind the newest: which versions clients played), ``checkpoints``,
``held_back`` (checkpoints the gate held back, with the reason), ``gate_held_s`` (seconds the relay
welcomed with an older best checkpoint) and ``restarts_while_held``. Progress goes to stderr, one
line per mode every 10 s, then a side-by-side table; the last line of stdout is JSON:
``{"on": {...}, "off": {...}, "settings": {...}}``. ``--gate on|off`` runs one mode alone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from stack import Stack, progress  # noqa: E402

ENV_ID = "CartPole-v1"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180, help="seconds measured per mode (default 180)")
    parser.add_argument(
        "--warmup", type=float, default=30,
        help="seconds of play before the measured window (default 30: the first model reaches the clients)",
    )
    parser.add_argument("--clients", type=int, default=4, help="real clients per mode (default 4)")
    parser.add_argument("--sps", type=float, default=150, help="steps/s of each client (default 150)")
    parser.add_argument(
        "--restart-every", type=float, default=30, help="seconds between a client's restarts (default 30; 0: never)"
    )
    parser.add_argument("--eval-every", type=int, default=2000, help="samples between evaluated checkpoints (default 2000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes per evaluation (default 10)")
    parser.add_argument(
        "--max-policy-lag", type=int, default=0, help="the campaign's relay staleness bound in versions (default 0: none)"
    )
    parser.add_argument("--hyperparams", default="{}", help="JSON overrides of PPO's CartPole defaults")
    parser.add_argument("--gate", choices=("on", "off"), help="run this mode alone (what the side-by-side run starts)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (logs, databases)")
    return parser.parse_args(argv)


def quantile(hist: dict[int, int], q: float) -> int | None:
    """The ``q`` quantile of a histogram {value: weight} (the smallest value with that share at or below)."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= q * total:
            return value
    return max(hist)


def lag_rows(stats: dict[bytes, bytes]) -> dict[int, list[int]]:
    return {int(lag): row for lag, row in json.loads(stats.get(b"policy_lag_samples", b"{}")).items()}


def refused(refusals: dict[bytes, bytes]) -> int:
    return sum(int(v) for k, v in refusals.items() if k.endswith(b":model_version"))


def figures(stats: dict[bytes, bytes], refusals: dict[bytes, bytes], since: tuple[dict, int] = ({}, 0)) -> dict:
    """The figures from the learner's stats and the relay's refusals, less those at ``since``."""
    rows = lag_rows(stats)
    for lag, (kept, dropped) in since[0].items():
        rows[lag] = [rows[lag][0] - kept, rows[lag][1] - dropped]
    rows = {lag: row for lag, row in rows.items() if row[0] or row[1]}
    kept = {lag: row[0] for lag, row in rows.items() if row[0]}
    read = sum(row[0] + row[1] for row in rows.values())
    dropped = sum(row[1] for row in rows.values())
    return {
        "samples_read": read,
        "dropped": dropped,
        "dropped_share": round(dropped / read, 4) if read else None,
        "lag_p50": quantile(kept, 0.5),
        "lag_p95": quantile(kept, 0.95),
        "lag_max": max(kept) if kept else None,
        # {versions behind: [samples kept, dropped]}; 20 stands for 20 or more
        "played_lag": {str(lag): rows[lag] for lag in sorted(rows)},
        "relay_refused_chunks": refused(refusals) - since[1],
        "version": int(stats.get(b"version", 0)),
    }


def run_mode(args) -> dict:
    label = f"gate {args.gate}"
    hyperparams = {
        "eval_every_samples": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "eval_max_share": 0.5,  # evaluations every --eval-every samples, not held to 10% of the steps
        **json.loads(args.hyperparams),
    }
    stack = Stack(keep=args.keep, env={"SOULSAI_ROLLOUT_GATE": "1" if args.gate == "on" else "0"})
    try:
        from portal.campaigns.models import ModelVersion  # Django is set up now
        from portal.core.redis import get_redis
        from trainer.keys import CampaignKeys

        stack.start_servers()
        campaign = stack.campaign(
            slug="gating", env_id=ENV_ID, algorithm="ppo", hyperparams=hyperparams, max_policy_lag=args.max_policy_lag
        )
        keys = CampaignKeys(campaign.pk)
        redis = get_redis()
        tokens = stack.tokens(campaign, args.clients)
        clients = [stack.start_client(t, f"client-{i}", max_sps=args.sps, seed=i) for i, t in enumerate(tokens)]
        # Client i restarts first after (i + 1) / clients of --restart-every: restarts spread evenly.
        period = args.restart_every
        next_restart = [(i + 1) * period / args.clients if period else float("inf") for i in range(args.clients)]
        restarts = restarts_held = 0
        held_s = 0.0
        start = last = time.monotonic()
        since: tuple[dict, int] = ({}, 0)  # the counts when the measured window opens
        warm = False
        next_line = 10.0
        while (now := time.monotonic()) - start < args.warmup + args.duration:
            time.sleep(0.25)
            now = time.monotonic()
            if not warm and now - start >= args.warmup:
                warm, held_s, restarts, restarts_held = True, 0.0, 0, 0
                since = (lag_rows(redis.hgetall(keys.learner)), refused(redis.hgetall(keys.rejection_codes)))
                progress(f"{label}: warm-up over, measuring for {args.duration:.0f} s")
            held = bool(redis.exists(keys.agent))
            held_s += (now - last) if held else 0.0
            last = now
            for i, due in enumerate(next_restart):
                if now - start < due:
                    continue
                old = clients[i]
                old.stop(timeout=10)
                stack.procs.remove(old)
                restarts += 1
                restarts_held += int(bool(redis.exists(keys.agent)))
                clients[i] = stack.start_client(tokens[i], f"client-{i}", max_sps=args.sps, seed=100 * restarts + i)
                next_restart[i] = due + period
            for proc in stack.procs:
                proc.check_alive()
            if now - start >= next_line:
                f = figures(redis.hgetall(keys.learner), redis.hgetall(keys.rejection_codes), since)
                progress(
                    f"{label}: {now - start:4.0f} s  v{f['version']}  {f['samples_read']:,} samples read, "
                    f"{f['dropped']:,} dropped  lag p50/p95 {f['lag_p50']}/{f['lag_p95']}  "
                    f"held back {ModelVersion.objects.filter(campaign=campaign).exclude(held_back='').count()}  "
                    f"gate held {held_s:.0f} s"
                )
                next_line += 10
        result = figures(redis.hgetall(keys.learner), redis.hgetall(keys.rejection_codes), since)
        checkpoints = ModelVersion.objects.filter(campaign=campaign, eval_episodes__gt=0).order_by("version")
        result.update(
            gate=args.gate,
            wall_s=round(time.monotonic() - start, 1),  # warm-up included
            checkpoints=[
                {"version": m.version, "samples": m.samples_total, "episodes": m.eval_episodes,
                 "return": round(m.eval_return or 0.0, 1), "held_back": bool(m.held_back)}
                for m in checkpoints
            ],
            held_back=[m.held_back for m in checkpoints if m.held_back],
            gate_held_s=round(held_s, 1),
            restarts=restarts,
            restarts_while_held=restarts_held,
        )
        return result
    finally:
        stack.stop()


def side_by_side(args) -> dict:
    """Both modes at once, each in its own process (Django is set up once per process)."""
    me = [sys.executable, str(Path(__file__).resolve())]
    passed = ["--duration", str(args.duration), "--warmup", str(args.warmup), "--clients", str(args.clients), "--sps", str(args.sps),
              "--restart-every", str(args.restart_every), "--eval-every", str(args.eval_every),
              "--eval-episodes", str(args.eval_episodes), "--max-policy-lag", str(args.max_policy_lag),
              "--hyperparams", args.hyperparams] + (["--keep"] if args.keep else [])
    children = {
        mode: subprocess.Popen(me + passed + ["--gate", mode], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
        for mode in ("on", "off")
    }
    try:
        results = {}
        for mode, child in children.items():
            out, _ = child.communicate()
            lines = out.strip().splitlines()
            results[mode] = json.loads(lines[-1]) if child.returncode == 0 and lines else {"error": f"exit {child.returncode}"}
        return results
    finally:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                child.wait()


def table(results: dict) -> None:
    rows = [("lag p50 / p95 / max (kept samples)", lambda r: f"{r['lag_p50']} / {r['lag_p95']} / {r['lag_max']}"),
            ("dropped as stale (learner)", lambda r: f"{r['dropped']:,} of {r['samples_read']:,} ({r['dropped_share']:.2%})"),
            ("refused as too old (relay, chunks)", lambda r: str(r["relay_refused_chunks"])),
            ("evaluated checkpoints / held back", lambda r: f"{len(r['checkpoints'])} / {len(r['held_back'])}"),
            ("gate held (s) / restarts while held", lambda r: f"{r['gate_held_s']} / {r['restarts_while_held']} of {r['restarts']}")]
    progress(f"{'':38} {'gate on':>28} {'gate off':>28}")
    for name, cell in rows:
        cells = [cell(results[m]) if "error" not in results[m] else results[m]["error"] for m in ("on", "off")]
        progress(f"{name:38} {cells[0]:>28} {cells[1]:>28}")


def main(argv=None) -> int:
    args = parse_args(argv)
    # A TERM unwinds like Ctrl-C: the stack's processes are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.gate:
        print(json.dumps(run_mode(args)))
        return 0
    results = side_by_side(args)
    table(results)
    settings = {k: getattr(args, k) for k in ("duration", "warmup", "clients", "sps", "restart_every", "eval_every",
                                               "eval_episodes", "max_policy_lag")}
    print(json.dumps({**results, "settings": {**settings, "env": ENV_ID, "algo": "ppo",
                                              "loadavg_1m": round(os.getloadavg()[0], 2)}}))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
