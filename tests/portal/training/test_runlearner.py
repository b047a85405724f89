"""`manage.py runlearner`: the Celery worker a learner host runs, and what it refuses before starting one.
(It starting as a real process and training a campaign: tests/e2e/test_learner_host_command.py.)"""

from __future__ import annotations

import sys

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.core.management.commands.runlearner import Command, runlearner_argv


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_a_learner_host_is_a_worker_on_the_learner_queue_only_with_one_thread_per_slot():
    argv = runlearner_argv(slots=3)
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "portal", "worker"]
    assert option(argv, "-Q") == "learner"  # no periodic tasks, no default queue
    assert option(argv, "-P") == "threads" and option(argv, "-c") == "3"
    assert option(argv, "-n") == "learner@%h"  # one node name per host
    assert "-B" not in argv  # beat runs once, on the data/web side


def test_help_says_what_a_learner_host_needs():
    text = " ".join(Command().create_parser("manage.py", "runlearner").format_help().split())
    for needed in ("--slots", "learner", "REDIS_URL", "DATABASE_URL", "SOULSAI_STORAGE=sftp", "SOULSAI_SFTP_*",
                   "SOULSAI_DEVICE", "docs/deployment.md"):  # fmt: skip
        assert needed in text, needed


@pytest.mark.parametrize("slots", ["0", "65", "-1"])
def test_slots_out_of_bounds_are_refused(slots):
    with pytest.raises(CommandError, match=f"--slots must be between 1 and 64, not {slots}"):
        call_command("runlearner", "--slots", slots)


@pytest.mark.parametrize("unset", ["REDIS_URL", "DATABASE_URL"])
def test_a_host_without_the_shared_redis_or_database_is_refused(monkeypatch, unset):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
    monkeypatch.delenv(unset)
    with pytest.raises(CommandError, match=f"{unset} not set: a learner host uses the platform's shared Redis"):
        call_command("runlearner", "--slots", "1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_on_a_host_without_it_refuses_to_start_the_worker(monkeypatch, settings):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
    settings.SOULSAI_DEVICE = "cuda"
    with pytest.raises(CommandError, match=r"SOULSAI_DEVICE=cuda but this host has no CUDA device \(torch"):
        call_command("runlearner", "--slots", "1")


def test_an_unreachable_redis_is_named_before_the_worker_starts(monkeypatch, settings):
    from harness.processes import free_port

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
    settings.SOULSAI_DEVICE = "cpu"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(CommandError, match="cannot reach Redis at REDIS_URL"):
        call_command("runlearner", "--slots", "1")
