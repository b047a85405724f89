#!/usr/bin/env python
"""Scaling with volunteers: time to the target with 1, 2, 4 and 8 clients paced like the real game.

Each client's env is throttled to --sps steps per second (``client_app run --max-sps``), as the real
game is (about 10 steps/s at 1x, 30 at 3x), so that with one client sampling, not learning, is the
bottleneck. For each client count, bench/learning.py runs the whole stack afresh (its own Redis,
database, relay, learner and clients, in a subprocess) until a checkpoint's evaluation return reaches
the target. Evaluation episodes are played by the same paced clients, so their cost scales too.

Progress goes to stderr; the last line of stdout is JSON: ``wall_s``, ``env_steps``, ``speedup``
(wall time of one client / wall time of N) and ``steps_per_s`` (env steps to the target / wall time),
each keyed by the number of clients ("1", "2", "4", "8"), plus every run's full result under ``runs``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--algo", choices=("dqn", "ppo"), default="dqn")
    parser.add_argument("--clients", default="1,2,4,8", help="client counts to run, comma-separated (default 1,2,4,8)")
    parser.add_argument("--sps", type=float, default=100.0, help="steps per second of each client's env (default 100)")
    parser.add_argument("--target", type=float, help="evaluation return to reach (default per env, see learning.py)")
    parser.add_argument("--hyperparams", default="{}", help="JSON overrides of the algorithm's defaults")
    parser.add_argument("--timeout", type=float, default=1800, help="per run, seconds (default 1800)")
    args = parser.parse_args(argv)

    counts = [int(c) for c in args.clients.split(",")]
    runs: dict[str, dict] = {}
    for n in counts:
        argv_n = [sys.executable, str(HERE / "learning.py"), "--env", args.env, "--algo", args.algo,
                  "--clients", str(n), "--max-sps", str(args.sps), "--hyperparams", args.hyperparams,
                  "--timeout", str(args.timeout)]
        if args.target is not None:
            argv_n += ["--target", str(args.target)]
        progress(f"{n} client(s) at {args.sps:g} steps/s each ...")
        # The run's own progress lines (every 10 s) go to our stderr; its JSON comes on stdout.
        done = subprocess.run(argv_n, stdout=subprocess.PIPE, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            progress(f"  the run with {n} clients failed (exit {done.returncode})")
            runs[str(n)] = {"reached": False, "error": f"exit {done.returncode}"}
            continue
        runs[str(n)] = json.loads(lines[-1])
        r = runs[str(n)]
        progress(f"  reached={r['reached']} wall {r['wall_s']} s, {r['env_steps']:,} env steps, eval {r['eval_return']}")

    wall = {n: r["wall_s"] for n, r in runs.items() if r.get("reached")}
    base = wall.get(str(counts[0]))
    result = {
        "env": args.env,
        "algo": args.algo,
        "sps_per_client": args.sps,
        "wall_s": wall,
        "env_steps": {n: r["env_steps"] for n, r in runs.items() if r.get("reached")},
        "speedup": {n: round(base / w, 2) for n, w in wall.items()} if base else {},
        # Env steps to the target vary from run to run (10k to 39k for CartPole here), so the time
        # ratio mixes luck into the sampling speed-up; steps/s to the target shows the latter alone.
        "steps_per_s": {n: round(runs[n]["env_steps"] / w, 1) for n, w in wall.items()},
        "runs": {n: {k: v for k, v in r.items() if k != "evaluations"} for n, r in runs.items()},
    }
    print(json.dumps(result))
    return 0 if len(wall) == len(counts) else 1


if __name__ == "__main__":
    sys.exit(main())
