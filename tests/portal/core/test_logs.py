"""Logs (portal/core/logs.py): with SOULSAI_LOG_FORMAT=json every line a process writes is one JSON
object naming its host, role and process, and the lines about one connection, learner or task name
the campaign, the machine and the user, so one volunteer's or one campaign's story can be followed
across hosts. The real ASGI server, client, Celery worker and beat, started from the roles' command
lines (portal.core.processes), with their output read back."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import LiveProcess
from portal.campaigns.services import campaign_create, campaign_launch
from portal.core.logs import (
    PLAIN_FORMAT,
    ContextFilter,
    JsonFormatter,
    PlainFormatter,
    log_context,
    logging_config,
    process_role,
)
from portal.core.processes import (
    LEARNER_QUEUES,
    PERIODIC_QUEUES,
    celery_beat_argv,
    celery_worker_argv,
    client_argv,
    uvicorn_argv,
)
from portal.core.redis import NOTICES_CHANNEL
from tests.conftest import FAST_DQN, ROOT, process_env, start_asgi, start_client, wait_for

JSON_ENV = {"SOULSAI_LOG_FORMAT": "json"}


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as JSON; a line that is not fails the test, quoted."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n--- output ---\n{text[-4000:]}")
    return lines


def test_a_record_is_one_json_line_with_its_context_and_traceback():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter(role="web"))
    log = logging.getLogger("soulsai.test.logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        with log_context(campaign=7, campaign_slug="iudex", machine=42, user=3):
            try:
                {}["missing"]
            except KeyError:
                log.exception(
                    "relay: a frame from %s\nbroke", "rig", extra={"samples": 32, "lag": float("inf")}
                )
        log.warning("no campaign here", extra={"campaign": 9})
    finally:
        log.removeHandler(handler)
    first, second = json_lines(out.getvalue())  # two records, two lines: newlines are escaped

    assert first["message"] == "relay: a frame from rig\nbroke"
    assert first["level"] == "ERROR" and first["logger"] == "soulsai.test.logs"
    assert (first["campaign"], first["campaign_slug"], first["machine"], first["user"]) == (7, "iudex", 42, 3)
    assert first["host"] == socket.gethostname() and first["role"] == "web" and isinstance(first["pid"], int)
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert first["exc"].startswith("Traceback") and "KeyError: 'missing'" in first["exc"]
    assert first["samples"] == 32 and first["lag"] == "inf"  # extras; never a bare Infinity in JSON
    # Outside the block the context is gone; a record's own extra= names its campaign.
    assert second["campaign"] == 9 and "machine" not in second and "exc" not in second


def test_a_plain_line_names_its_context_before_the_traceback():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(PlainFormatter(PLAIN_FORMAT))
    log = logging.getLogger("soulsai.test.plain")
    log.addHandler(handler)
    log.propagate = False
    try:
        with log_context(campaign=7, machine=42):
            try:
                raise ValueError("bad")
            except ValueError:
                log.exception("learner crashed")
        log.info("nothing in particular")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(" ERROR soulsai.test.plain: learner crashed [campaign=7 machine=42]")
    assert lines[1] == "Traceback (most recent call last):" and lines[-2] == "ValueError: bad"
    assert lines[-1].endswith(" INFO soulsai.test.plain: nothing in particular")


@pytest.fixture
def json_log():
    """JSON lines of what the portal logs in this process (the settings' filter and formatter)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: json_lines(out.getvalue())
    root.removeHandler(handler)


@pytest.mark.django_db
def test_a_request_logs_with_its_user_once_the_user_was_looked_up(alice_client, alice, json_log):
    from django.test import Client

    assert alice_client.get("/no-such-page/").status_code == 404  # the page names the user: looked up
    assert Client().get("/no-such-page/").status_code == 404
    logged_in, anonymous = [line for line in json_log() if line["logger"] == "django.request"]
    assert logged_in["message"] == "Not Found: /no-such-page/" and logged_in["user"] == alice.id
    assert "user" not in anonymous


@pytest.mark.django_db(transaction=True)  # the launch queues its learner on commit
def test_lines_written_while_a_request_runs_name_its_user(staff_client, staff, draft_campaign, json_log):
    response = staff_client.post(f"/staff/campaigns/{draft_campaign.slug}/launch/")
    assert response.status_code == 302
    queued = [
        line for line in json_log() if line["message"] == f"campaign {draft_campaign.id}: learner queued"
    ]
    assert [line["user"] for line in queued] == [staff.id]


def test_the_role_is_read_from_each_roles_command_line(monkeypatch):
    from portal.core.management.commands.runlearner import runlearner_argv

    monkeypatch.delenv("SOULSAI_ROLE", raising=False)
    assert process_role(uvicorn_argv(host="127.0.0.1", port=8000)) == "web"
    assert process_role(runlearner_argv(slots=2)) == "learner"
    assert process_role(celery_worker_argv(queues=LEARNER_QUEUES, node_name="learner@%h")) == "learner"
    assert process_role(celery_worker_argv(queues=PERIODIC_QUEUES, node_name="periodic@%h")) == "worker"
    assert (
        process_role(celery_worker_argv(beat_schedule=Path("schedule"))) == "worker"
    )  # all queues, beat inside
    assert process_role(celery_beat_argv(schedule=Path("schedule"))) == "beat"
    assert process_role(["manage.py", "runlearner", "--slots", "2"]) == "learner"
    assert process_role(["manage.py", "migrate"]) == "manage"
    assert process_role(client_argv(server="http://x", spool_dir=Path("s"))) == "client_app"
    monkeypatch.setenv("SOULSAI_ROLE", "standby-learner")
    assert process_role(uvicorn_argv(host="127.0.0.1", port=8000)) == "standby-learner"


def test_an_unknown_format_stops_the_start_with_a_readable_error():
    with pytest.raises(RuntimeError, match="SOULSAI_LOG_FORMAT must be one of plain, json, not 'xml'"):
        logging_config(format="xml")
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**process_env(), "SOULSAI_LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "SOULSAI_LOG_FORMAT must be one of plain, json" in result.stderr


UNCAUGHT = """
import logging, threading, warnings, django
django.setup()
logging.getLogger("portal.test").info("before")
warnings.warn("careful")
thread = threading.Thread(target=lambda: 1 / 0)
thread.start(); thread.join()
raise RuntimeError("at the top\\nof the process")
"""


def test_uncaught_exceptions_and_warnings_stay_one_json_line_each():
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", UNCAUGHT],
        cwd=ROOT,
        env={**process_env(), **JSON_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = json_lines(result.stdout + result.stderr)
    errors = [line["exc"] for line in lines if line["level"] == "CRITICAL"]
    assert len(errors) == 2, lines
    assert errors[0].endswith("ZeroDivisionError: division by zero")  # in a thread
    assert errors[1].endswith("RuntimeError: at the top\nof the process")  # the process's own
    assert any(line["message"] == "before" for line in lines)
    assert any(line["logger"] == "py.warnings" and "careful" in line["message"] for line in lines)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_relay_lines_name_the_campaign_machine_and_host_of_their_connection(
    campaign, token, volunteer, redis_client, tmp_path
):
    machine, raw = token
    server = start_asgi(tmp_path, name="web-json", env=JSON_ENV)
    client = start_client(server.url, raw, tmp_path / "spool", tmp_path, "--max-steps", "300")
    try:
        assert client.proc.wait(timeout=120) == 0, client.output()
        # A notice that is not JSON: the fan-out (one subscription per process, opened by the first
        # client's connection) logs it, and that line concerns no connection.
        redis_client.publish(NOTICES_CHANNEL, "not json")
        wait_for(lambda: "not JSON" in server.output(), 30, "the fan-out to log the notice", server)
    finally:
        client.stop()
        server.stop()  # its last lines (shutdown) written
    lines = json_lines(server.output())

    assert all(line["host"] == socket.gethostname() and line["role"] == "web" for line in lines)
    assert {line["pid"] for line in lines} == {server.pid}
    about = [line for line in lines if f"machine {machine.prefix}" in line["message"]]
    assert [line["message"].split(" with ")[0].split(" (")[0] for line in about] == [
        f"relay: machine {machine.prefix} joined",
        f"relay: machine {machine.prefix} left",
    ]
    for line in about:
        assert line["campaign"] == campaign.id and line["campaign_slug"] == campaign.slug
        assert line["machine"] == machine.id and line["user"] == volunteer.id
    fanout = next(line for line in lines if "not JSON" in line["message"])
    assert not {"campaign", "machine", "user"} & fanout.keys(), fanout
    started = next(line for line in lines if line["logger"].startswith("uvicorn"))  # uvicorn's own lines too
    assert "campaign" not in started
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]  # off, as uvicorn_argv says


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_learner_runs_with_its_campaign_on_every_line_and_beat_writes_json_only(tmp_path):
    campaign = campaign_create(
        slug="json-learner", name="JSON learner", env_id="CartPole-v1", hyperparams=FAST_DQN
    )
    campaign_launch(campaign=campaign)  # commits: a learner task onto the learner queue
    env = {**process_env(), **JSON_ENV}
    worker = LiveProcess(
        "learner", celery_worker_argv(queues=LEARNER_QUEUES, node_name="learner@%h"), env, tmp_path
    )
    beat = LiveProcess("beat", celery_beat_argv(schedule=tmp_path / "beat-schedule"), env, tmp_path)
    try:
        wait_for(lambda: "learner started" in worker.output(), 120, "the learner to start", worker)
        wait_for(lambda: "beat: Starting" in beat.output(), 60, "beat to start", beat)
    finally:
        worker.stop()  # warm shutdown: the learner stops, the task ends
        beat.stop()
    # No banners; Celery's own notice of the warm shutdown is a JSON line too.
    lines = json_lines(worker.output())
    assert any(line["message"] == "worker: Warm shutdown (MainProcess)" for line in lines)
    assert all(line["role"] == "beat" for line in json_lines(beat.output()))

    assert all(line["role"] == "learner" and line["host"] == socket.gethostname() for line in lines)

    def line_of(start: str) -> dict:
        found = [line for line in lines if line["message"].startswith(f"campaign {campaign.id}: {start}")]
        assert found, f"no line starts with {start!r}: {[line['message'] for line in lines]}"
        return found[0]

    # The learner's own lines (trainer.learner knows no Django): campaign and slug from the runner;
    # the task's line after the run: the campaign from the task's campaign_id (portal.celery).
    for line in (line_of("learner started on"), line_of("learner stopped")):
        assert line["logger"] == "trainer.learner"
        assert line["campaign"] == campaign.id and line["campaign_slug"] == campaign.slug, line
    ended = line_of("learner task ended")
    assert ended["logger"] == "portal.training.tasks" and ended["campaign"] == campaign.id, ended
    assert any(line["logger"].startswith("celery") for line in lines)  # Celery's own lines, in JSON too


@pytest.mark.django_db(transaction=True)  # learner_ensure queues on commit
def test_the_supervisors_lines_name_the_campaign_each_concerns(draft_campaign, json_log):
    from portal.campaigns.models import Campaign
    from portal.training.tasks import supervise_learners

    # Running, with no learner queued or holding its lease (as after a learner host died).
    Campaign.objects.filter(pk=draft_campaign.pk).update(status=Campaign.Status.RUNNING)
    supervise_learners()  # it queues one
    queued = [line for line in json_log() if line["message"] == f"campaign {draft_campaign.id}: learner queued"]
    assert [(line["campaign"], line["campaign_slug"]) for line in queued] == [
        (draft_campaign.id, draft_campaign.slug)
    ]
