"""Smoke test of bench/hostile.py: one case per category against the real server, and its --help.

It checks that the bench runs every category, judges every case and reports its figures, that no
case errored, and that none got through or left a traceback in the server's log (the full run,
`bench/hostile.py`, is quoted in bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

KEYS = {
    "cases", "categories", "refused", "got_through", "tracebacks", "errors", "max_rss_growth_mib",
    "max_loop_stall_ms", "by_category", "through", "errored", "results",
}


@pytest.mark.e2e
def test_hostile_bench_quick_runs_every_category_and_nothing_gets_through():
    proc = subprocess.run([sys.executable, "bench/hostile.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result), KEYS - set(result)
    assert result["categories"] >= 10, result["by_category"].keys()
    assert result["cases"] >= result["categories"]
    assert result["errors"] == 0, [(r["id"], r["error"]) for r in result["results"] if r["error"]]
    for r in result["results"]:
        assert {"refused", "got_through", "traceback", "rss_growth_mib", "loop_stall_ms"} <= set(r)
    assert result["got_through"] == 0, result["through"]
    assert result["tracebacks"] == 0, [r["id"] for r in result["results"] if r["traceback"]]
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_hostile_bench_help_describes_every_case():
    proc = subprocess.run([sys.executable, "bench/hostile.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run([sys.executable, "bench/hostile.py", "--list"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60).stdout
    ids = [line.split()[0] for line in listed.splitlines() if line.startswith("  ")]
    assert len(ids) >= 200 and len(set(ids)) == len(ids)
    for case_id in ids:
        assert case_id in proc.stdout
    categories = {case_id.split(".")[0] for case_id in ids}
    assert len(categories) >= 10
    for category in categories:
        assert sum(i.startswith(category + ".") for i in ids) >= 10, category
    for option in ("--only", "--list", "--quick"):
        assert option in proc.stdout
