"""The shared harness: waiting for an event, and processes that log to a file and stop with their children."""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from harness import LiveProcess, WaitTimeout, answers_http, free_port, wait_for


def test_wait_for_returns_the_predicates_value_once_it_is_truthy():
    calls = []

    def third_time() -> str:
        calls.append(1)
        return "ready" if len(calls) >= 3 else ""

    assert wait_for(third_time, 5, "the third call", interval=0.01) == "ready"
    assert len(calls) == 3


def test_wait_for_fails_naming_the_event_with_the_processes_logs(tmp_path):
    proc = LiveProcess("talker", [sys.executable, "-c", "print('why it did not happen', flush=True)"],
                       os.environ, tmp_path)
    proc.proc.wait(30)
    with pytest.raises(WaitTimeout, match="the impossible") as failure:
        wait_for(lambda: False, 0.05, "the impossible", proc, interval=0.01)
    assert "--- talker ---" in str(failure.value) and "why it did not happen" in str(failure.value)
    assert isinstance(failure.value, AssertionError)  # a test reports it as a failure, not an error
    proc.stop()


def test_stop_ends_the_process_group_and_check_alive_reports_an_exit(tmp_path):
    # The child forks a grandchild; stopping the child's group stops both.
    script = (
        "import subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', g.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = LiveProcess("parent", [sys.executable, "-c", script], os.environ, tmp_path)
    line = wait_for(lambda: "grandchild" in proc.output() and proc.output(), 30, "the child to start", proc,
                    interval=0.05)
    grandchild = int(line.split()[1])
    proc.check_alive()
    proc.stop(timeout=10)
    assert not proc.running()

    def gone() -> bool:
        try:
            return psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, 10, "the grandchild to be stopped with its group")
    with pytest.raises(RuntimeError, match="parent exited"):
        proc.check_alive()


def test_a_free_port_answers_no_http():
    assert not answers_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)
