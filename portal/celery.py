"""The Celery app: the learner runs on the ``learner`` queue, beat tasks on the default one."""

import inspect
import logging
import os
import sys

from celery import Celery
from celery.signals import celeryd_init, setup_logging, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("soulsai")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each package's tasks module: portal.training.tasks holds the learner's (named trainer.tasks.*).
app.autodiscover_tasks(["portal.training", "portal.campaigns", "portal.livestats", "portal.leaderboards"])


# Logs (portal/core/logs.py): workers and beat log through the portal's LOGGING, as the web processes
# do, instead of the root logger Celery would take over with a format of its own.
@setup_logging.connect
def _setup_logging(**_: object) -> None:
    from django.conf import settings

    from portal.core.logs import configure

    configure(settings.LOGGING)


def _json_logs() -> bool:
    from django.conf import settings

    return settings.SOULSAI_LOG_FORMAT == "json"


@celeryd_init.connect
def _json_worker(instance=None, **_: object) -> None:
    """In JSON, a worker writes JSON lines only: no start-up banner (many lines of text, which show what
    its command line says), and the notices Celery's signal handlers print ("worker: Warm shutdown
    (MainProcess)") as JSON lines too."""
    if instance is None or not _json_logs():
        return
    instance.quiet = True
    from celery.apps import worker

    worker.safe_say = _json_say  # looked up when a handler runs; if Celery renames it, its text is back


def _json_say(msg: str, f=sys.__stderr__) -> None:
    """Celery's ``safe_say`` as a JSON line, written with one ``os.write`` like the original: it runs in
    a signal handler, where taking the logging module's locks is not safe."""
    from portal.core.logs import JsonFormatter

    record = logging.makeLogRecord(
        {"name": "celery.apps.worker", "levelname": "INFO", "levelno": logging.INFO}
    )
    record.msg = msg.strip()
    os.write(f.fileno(), (JsonFormatter().format(record) + "\n").encode())


_beat = app.Beat


def _beat_app(*args, **kwargs):
    """Beat, without its banner in JSON (Celery has no hook that runs before beat prints it, but this
    constructor)."""
    if _json_logs():
        kwargs["quiet"] = True
    return _beat(*args, **kwargs)


app.Beat = _beat_app

_context_tokens: dict[str, object] = {}  # task id -> log context token, until the task has run


@task_prerun.connect
def _task_log_context(task_id=None, task=None, args=(), kwargs=None, **_: object) -> None:
    """A task that takes a ``campaign_id`` (the learner's) logs with that campaign for its run."""
    try:
        campaign_id = (
            inspect.signature(task.run).bind_partial(*args, **(kwargs or {})).arguments.get("campaign_id")
        )
    except (TypeError, ValueError):
        return
    if isinstance(campaign_id, int):
        from portal.core.logs import context_set

        _context_tokens[task_id] = context_set(campaign=campaign_id)


@task_postrun.connect
def _task_log_context_end(task_id=None, **_: object) -> None:
    token = _context_tokens.pop(task_id, None)
    if token is not None:
        from portal.core.logs import context_reset

        context_reset(token)
