"""Smoke test of bench/relay.py: a few paced clients for a few seconds, every acked chunk stored once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

KEYS = {
    "clients", "transitions_per_s", "chunks_per_s", "ack_ms_p50", "ack_ms_p99", "rejected", "lost", "duplicated",
    "waits", "errors", "connect_s", "server_workers", "notice_ms_p50", "notice_ms_p95", "notice_ms_max",
    "notice_reached",
}


@pytest.mark.e2e
def test_relay_bench_runs_and_loses_nothing():
    proc = subprocess.run(
        [sys.executable, "bench/relay.py", "--clients", "4", "--steps", "16", "--rate", "800", "--duration", "3", "--warmup", "1",
         "--notify", "--notify-every", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result), KEYS - set(result)
    assert result["clients"] == 4 and result["clients_ready"] == 4, proc.stderr[-3000:]
    assert result["chunks_acked"] > 0 and result["transitions_per_s"] > 0
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["rejected"] == 0 and result["errors"] == 0, result["error_samples"]
    assert result["notices"] >= 1 and result["notice_reached"] == 1.0
    assert proc.returncode == 0


def test_relay_bench_help_explains_the_options():
    proc = subprocess.run([sys.executable, "bench/relay.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    for option in ("--clients", "--steps", "--rate", "--obs-dim", "--duration", "--notify", "--workers"):
        assert option in proc.stdout
