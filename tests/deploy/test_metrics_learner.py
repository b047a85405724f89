"""The learner role's metrics: the hooks of ``trainer.metrics`` served over real HTTP, and what
``manage.py runlearner`` checks of SOULSAI_METRICS_ADDR before it becomes a Celery worker.
(A real learner host serving them while it trains: tests/deploy/test_metrics_names.py.)"""

from __future__ import annotations

import socket

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from harness import free_port
from portal.core.management.commands.runlearner import METRICS_MODULE, runlearner_argv
from tests.conftest import process_env
from tests.deploy.metrics_scrape import scrape, value
from trainer import metrics


def test_the_hooks_are_served_per_campaign_and_leave_with_the_learner():
    host, port = metrics.serve(f"127.0.0.1:{free_port()}")
    url = f"http://{host}:{port}/metrics"
    metrics.learner_started(901, device="cpu", device_name="cpu")
    metrics.ingested(901, chunks=2, samples=256, policy_lag=1.5)
    metrics.ticked(901, updates=100, updates_per_s=0.0, backlog=None, version=3)  # resumed at 100 updates
    metrics.ticked(901, updates=130, updates_per_s=30.0, backlog=7, version=4)
    with metrics.publishing(901, checkpoint=True):
        pass
    with metrics.publishing(901, checkpoint=False):
        pass

    samples = scrape(url)
    assert value(samples, "soulsai_learner_device", campaign_id="901", device="cpu") == 1
    assert value(samples, "soulsai_learner_samples_ingested_total", campaign_id="901") == 256
    assert value(samples, "soulsai_learner_chunks_ingested_total", campaign_id="901") == 2
    assert value(samples, "soulsai_learner_policy_lag", campaign_id="901") == 1.5
    assert value(samples, "soulsai_learner_updates_total", campaign_id="901") == 30  # since it started
    assert value(samples, "soulsai_learner_updates_per_second", campaign_id="901") == 30
    assert value(samples, "soulsai_learner_stream_backlog", campaign_id="901") == 7
    assert value(samples, "soulsai_learner_publish_seconds_count", campaign_id="901") == 2
    assert value(samples, "soulsai_learner_checkpoint_seconds_count", campaign_id="901") == 1
    assert value(samples, "soulsai_learner_running") >= 1

    # A recovery goes back to a checkpoint's update count: the counter never goes back.
    metrics.ticked(901, updates=110, updates_per_s=0.0, backlog=None, version=4)
    metrics.ticked(901, updates=115, updates_per_s=5.0, backlog=None, version=5)
    assert value(scrape(url), "soulsai_learner_updates_total", campaign_id="901") == 35

    metrics.learner_stopped(901)
    samples = scrape(url)
    assert value(samples, "soulsai_learner_device", campaign_id="901") is None
    assert value(samples, "soulsai_learner_stream_backlog", campaign_id="901") is None
    assert value(samples, "soulsai_learner_samples_ingested_total", campaign_id="901") == 256  # counters stay


@pytest.mark.parametrize("address", ["9108", "127.0.0.1", "127.0.0.1:port", "127.0.0.1:70000", ":9108"])
def test_an_address_that_is_not_host_and_port_is_refused(address):
    with pytest.raises(ValueError, match="host:port|port must be"):
        metrics.parse_address(address)


def test_the_worker_imports_the_metrics_module_only_when_an_address_is_set():
    assert METRICS_MODULE not in runlearner_argv(slots=1)
    argv = runlearner_argv(slots=1, metrics=True)
    assert argv[argv.index("--include") + 1] == METRICS_MODULE == "portal.metrics.learner_host"


# transaction=True: runlearner checks the database by opening a connection of its own, which a pooled
# PostgreSQL connection cannot do inside the test's atomic block.
@pytest.mark.django_db(transaction=True)
def test_runlearner_refuses_a_metrics_address_it_cannot_serve(monkeypatch, settings):
    env = process_env()
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])
    monkeypatch.setenv("DATABASE_URL", env["DATABASE_URL"])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        settings.SOULSAI_METRICS_ADDR = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(
            CommandError, match=r"SOULSAI_METRICS_ADDR=127\.0\.0\.1:\d+: cannot serve metrics there"
        ):
            call_command("runlearner", "--slots", "1")
    settings.SOULSAI_METRICS_ADDR = "localhost"
    with pytest.raises(CommandError, match="is not host:port"):
        call_command("runlearner", "--slots", "1")
