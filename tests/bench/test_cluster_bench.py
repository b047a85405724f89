"""The short version of bench/cluster.py: the production topology as separate hosts, a few hundred
simulated clients through nginx with TLS, every drill once; nothing acknowledged is lost or doubled
and every fault is recovered from.

It makes network namespaces and runs private PostgreSQL, Redis, SFTP and nginx servers (root,
iproute2, Debian's postgresql, redis-server, openssh-server, nginx): with CI set, a missing one fails
the test; .ci/run runs it in pass 1 only (marker separate_hosts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.separate_hosts
@pytest.mark.timeout(720)
def test_cluster_bench_loses_nothing_and_recovers_from_every_fault():
    from harness.cluster import missing

    why = missing()
    if why:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)
    # 100 drill clients and an 8 s nginx drain (production: 30 s) exercise the same faults and repairs
    # as the bench's defaults; the drain is the time the old workers idle before closing their sockets.
    proc = subprocess.run(
        [sys.executable, "bench/cluster.py", "--drills", "all", "--clients", "300", "--duration", "8",
         "--warmup", "3", "--drill-clients", "100", "--asgi-per-host", "1", "--proxy-drain-s", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=660,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr[-5000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    drills = result["drills"]
    assert set(drills) == {
        "scale",
        "relay_kill",
        "learner_kill",
        "redis_restart",
        "postgres_restart",
        "proxy_reload",
    }
    for name, drill in drills.items():
        assert (drill["lost"], drill["duplicated"]) == (0, 0), (name, drill)
    scale = drills["scale"]
    assert scale["clients_ready"] == 300 and scale["chunks_acked"] > 0 and scale["errors"] == 0, scale
    assert scale["notices"] >= 1 and scale["notice_reached"] == 1.0, scale
    assert set(scale["cpu_pct"]) >= {
        "asgi",
        "nginx",
        "redis",
        "postgres",
        "learner",
        "beat",
        "worker",
        "loadgen",
    }
    for name in ("relay_kill", "learner_kill", "redis_restart", "postgres_restart", "proxy_reload"):
        assert drills[name]["unacked_at_end"] == 0 and drills[name]["acked_samples"] > 0, (name, drills[name])
        assert drills[name]["ingested_samples"] == drills[name]["acked_samples"], (name, drills[name])
    # A killed relay process's clients came back through the proxy to the others.
    assert drills["relay_kill"]["clients_cut"] > 0 and drills["relay_kill"]["recovery_s"] is not None
    assert drills["learner_kill"]["takeover_s"] <= drills["learner_kill"]["takeover_limit_s"]
    # While Redis or PostgreSQL was down, a new connection was told to try again later (1013).
    assert drills["redis_restart"]["new_connection_while_down"] == "close 1013", drills["redis_restart"]
    assert drills["postgres_restart"]["new_connection_while_down"] == "close 1013", drills["postgres_restart"]
    assert drills["postgres_restart"]["new_connection_after"] == "welcome"
    # The reload's old workers closed their websockets; every client reconnected.
    assert drills["proxy_reload"]["reconnects"] > 0 and drills["proxy_reload"]["recovery_s"] is not None
    assert result["ok"] is True and proc.returncode == 0, proc.stderr[-3000:]


def test_cluster_bench_help_explains_the_drills():
    proc = subprocess.run([sys.executable, "bench/cluster.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0
    for option in ("--clients", "--rate", "--steps", "--duration", "--drills", "--drill-clients", "--outage"):
        assert option in proc.stdout
    for drill in ("scale", "relay_kill", "learner_kill", "redis_restart", "postgres_restart", "proxy_reload"):
        assert drill in proc.stdout
