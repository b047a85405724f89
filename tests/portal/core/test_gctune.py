"""The ASGI processes' garbage collector (portal.core.gctune): frozen after start-up, full scans spaced
out, so that thousands of connections' objects do not stop the event loop (bench/relay.py with 5,000
clients: ack p99 1,547 ms with Python's thresholds, 88 ms with these)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import ROOT
from portal.core.gctune import parse_thresholds

PROBE = "import gc, portal.asgi; print(gc.get_threshold(), gc.get_freeze_count() > 0)"


def _asgi_process(**env: str) -> subprocess.CompletedProcess:
    """Import the ASGI application in a fresh process, as uvicorn does, and report its collector."""
    base = {k: v for k, v in os.environ.items() if k != "SOULSAI_GC_THRESHOLDS"}
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def test_an_asgi_process_freezes_its_start_up_and_spaces_full_collections():
    done = _asgi_process()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "(50000, 20, 100) True"
    done = _asgi_process(SOULSAI_GC_THRESHOLDS="2000, 10, 10")
    assert done.stdout.strip().splitlines()[-1] == "(2000, 10, 10) True", done.stderr


def test_python_keeps_the_interpreters_own_collector():
    done = _asgi_process(SOULSAI_GC_THRESHOLDS="python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "(700, 10, 10) False"


@pytest.mark.parametrize("bad", ["50000,20", "a,b,c", "50000,-1,100", "0,10,10", ""])
def test_a_malformed_setting_stops_the_start_with_its_name(bad):
    with pytest.raises(ValueError, match="SOULSAI_GC_THRESHOLDS"):
        parse_thresholds(bad)
    done = _asgi_process(SOULSAI_GC_THRESHOLDS=bad)
    assert done.returncode != 0
    assert "SOULSAI_GC_THRESHOLDS" in done.stderr


def test_the_thresholds_parse_as_three_integers():
    assert parse_thresholds("50000,20,100") == (50000, 20, 100)
    assert parse_thresholds(" 700 , 10 , 10 ") == (700, 10, 10)
    assert parse_thresholds("Python") is None
