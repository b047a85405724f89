#!/usr/bin/env python
"""The learner on hosts of its own: takeover time and acknowledged chunks kept, across real hosts.

Runs the scenario of harness/takeover.py (also tests/e2e/test_learner_host.py): a data and web host,
two learner hosts and a volunteer's machine as network namespaces; the learner host that trains the
campaign is SIGKILLed while it holds chunks no checkpoint covers, and the standby takes over. Needs
root (ip netns), Debian's PostgreSQL binaries and openssh-server; traffic goes only to the namespaces
it makes.

Prints progress and, on its last line, JSON: ``takeover_s`` (kill to the second host's first
heartbeat), ``checkpoint``/``checkpoint_samples``, ``held_at_kill``, ``acked`` (samples the relay
acknowledged), ``ingested`` (samples the surviving learner counts once it read everything), ``lost``
and ``duplicated``; with ``--runs N``, every run's figures and the medians. Exits 1 when a check of a
run fails (a model not served by the web host, versions going back, ...), 2 when it cannot run here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.takeover import missing, progress, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs, each on fresh hosts (default 1)")
    args = parser.parse_args()
    why = missing()
    if why:
        progress(f"cannot run here: {why}")
        return 2
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="soulsai-takeover-") as folder:
            try:
                runs.append(run(Path(folder)))
            except AssertionError as exc:
                progress(f"run {i + 1}: a check failed: {exc}")
                print(json.dumps({"error": str(exc)[:2000], "runs": runs}))
                return 1
        progress(f"run {i + 1}/{args.runs}: {json.dumps(runs[-1])}")
    if args.runs == 1:
        print(json.dumps(runs[0]))
    else:
        print(json.dumps({
            "runs": runs,
            "takeover_s_median": statistics.median(r["takeover_s"] for r in runs),
            "lost_total": sum(r["lost"] for r in runs),
            "duplicated_total": sum(r["duplicated"] for r in runs),
        }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
