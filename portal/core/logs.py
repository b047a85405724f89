"""Log lines that say whom they concern: JSON lines (``SOULSAI_LOG_FORMAT=json``) or plain text.

With relays, learners and workers on several hosts, one volunteer's or one campaign's story is spread
over many logs. So every line names its host, role and process, and a line written while the platform
works for one campaign, machine or user names them too: ``jq 'select(.campaign == 3)'`` over all the
hosts' logs follows campaign 3 (docs/deployment.md, "Logs").

Who a line concerns is set where it is known, in a context variable (each asyncio task and each
thread sees its own), and copied onto every record by ``ContextFilter``:

- the relay sets campaign, machine and user once a connection's token is accepted
  (``portal.relay.consumers``): each websocket connection runs in its own asyncio task, so the value
  stays with that connection and costs nothing per frame;
- the learner sets its campaign for its run (``portal.training.runner``), and every Celery task that
  takes a ``campaign_id`` gets it for its run (``portal.celery``);
- HTTP requests carry their user (``RequestUserMiddleware``), once something has looked the user up.

A record's own ``extra={"campaign": ...}`` wins over the context. This module imports nothing of
Django: the settings build their ``LOGGING`` with it before Django is set up.
"""

from __future__ import annotations

import json
import logging
import logging.config
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The fields that say whom a line concerns, in the order lines show them.
CONTEXT_FIELDS = ("campaign", "campaign_slug", "machine", "user")


@dataclass(frozen=True, slots=True)
class LogContext:
    """Whom the work under way concerns; None where unknown. ``user`` may be a function that
    answers the user's id only if it is already known (an HTTP request's user is looked up lazily)."""

    campaign: int | None = None
    campaign_slug: str | None = None
    machine: int | None = None  # the volunteer's machine (its machine token's id)
    user: int | Callable[[], int | None] | None = None


_CONTEXT: ContextVar[LogContext] = ContextVar("soulsai_log_context", default=LogContext())  # noqa: B039 (frozen)


def context_get() -> LogContext:
    return _CONTEXT.get()


def context_set(**fields: Any) -> Token[LogContext]:
    """Add ``fields`` (of ``LogContext``) to the context of this asyncio task or thread, for the rest
    of it (a relay connection's task); ``context_reset`` with the token undoes it."""
    return _CONTEXT.set(replace(_CONTEXT.get(), **fields))


def context_reset(token: Token[LogContext]) -> None:
    _CONTEXT.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[LogContext]:
    """``fields`` in the log context for the block (a learner's run, a task)."""
    token = context_set(**fields)
    try:
        yield _CONTEXT.get()
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the log context onto each record (as attributes named as ``CONTEXT_FIELDS``).

    On the handler: it runs in the thread and task that logged, so it reads their context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _CONTEXT.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                value = getattr(ctx, name)
                setattr(record, name, value() if callable(value) else value)
        if record.user is None and getattr(record, "request", None) is not None:
            # Django logs a 4xx/5xx answer after the middleware returned, naming its request.
            record.user = _request_user_id(record.request)
        return True


# ---------------------------------------------------------------------------------------------------
# The process: host and role


def process_role(argv: Sequence[str] | None = None) -> str:
    """The role of this process, read from how it was started (portal.core.processes builds every
    role's command line): ``web`` (uvicorn: pages, API and relay), ``learner`` (a Celery worker on
    the learner queue, without the periodic one: runlearner's and make run's), ``worker`` (any other
    Celery worker), ``beat``, ``manage`` (other manage.py commands), else the program's name.
    ``argv``: this process's ``sys.argv`` by default, or a command line that starts with the
    interpreter. ``SOULSAI_ROLE`` overrides it (a process started some other way)."""
    override = os.environ.get("SOULSAI_ROLE", "").strip()
    if override:
        return override
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name.startswith("python"):  # a command line, as portal.core.processes builds
        argv = [f"{argv[2]}/__main__.py", *argv[3:]] if argv[1:2] == ["-m"] and len(argv) > 2 else argv[1:]
    if not argv or not argv[0]:
        return "python"
    program = Path(argv[0])
    name = program.parent.name if program.name == "__main__.py" else program.stem  # python -m NAME
    args = argv[1:]
    if name in ("uvicorn", "gunicorn", "daphne"):
        return "web"
    if name == "celery":
        if "beat" in args:
            return "beat"
        if "worker" in args:
            queues = set((_option(args, "-Q", "--queues") or "").split(","))
            return "learner" if "learner" in queues and "periodic" not in queues else "worker"
        return "celery"
    if name == "manage":
        command = next((a for a in args if not a.startswith("-")), "")
        return {"runserver": "web", "runlearner": "learner"}.get(command, "manage")
    return name


def _option(args: Sequence[str], short: str, long: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in (short, long) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(long + "="):
            return arg[len(long) + 1 :]
        if arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            return arg[len(short) :]
    return None


# ---------------------------------------------------------------------------------------------------
# Formatters

# Attributes every LogRecord has (and what formatters add): anything else came with ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12
    "color_message",  # uvicorn's coloured copy of the message
    *CONTEXT_FIELDS,
}


def _json_value(value: Any) -> Any:
    """A value JSON holds as it is; anything else (objects, non-finite floats) as text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, host, role, pid, then
    campaign, campaign_slug, machine and user where known, other ``extra=`` fields, and a traceback
    as one ``exc`` string. Newlines in a message or traceback are escaped: a record is one line."""

    def __init__(self, *args: Any, role: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.host = socket.gethostname()
        self.role = role or process_role()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "host": self.host,
            "role": self.role,
            "pid": record.process,
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = _json_value(value)
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRS and name not in line:
                line[name] = _json_value(value)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, allow_nan=False)


class PlainFormatter(logging.Formatter):
    """The developer's lines (``make run``): ``time level logger: message``, then whom it concerns."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        about = [
            f"{name}={value}" for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None
        ]
        if not about:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [{' '.join(about)}]{newline}{rest}"


# ---------------------------------------------------------------------------------------------------
# Configuration


def logging_config(*, format: str, level: str = "INFO") -> dict[str, Any]:
    """The ``LOGGING`` dict (dictConfig) for ``format`` (``plain`` or ``json``), one handler on stderr
    that every logger reaches: Django's, uvicorn's (which configures its own before Django loads) and
    Celery's (portal.celery hands Celery this same configuration)."""
    if format not in FORMATS:
        raise RuntimeError(f"SOULSAI_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {format!r}")
    formatter = {"()": JsonFormatter} if format == "json" else {"()": PlainFormatter, "format": PLAIN_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {format: formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": format, "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # Django's own console handler (DEBUG only) would write every django line a second time.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "propagate": True},
        },
    }


def configure(config: dict[str, Any]) -> None:
    """Apply a ``logging_config`` dict (Django's ``LOGGING_CONFIG``; Celery's setup_logging).

    Warnings become log records; in JSON, so do uncaught exceptions (in any thread): a traceback on
    stderr would be many lines that are not JSON.
    """
    json_lines = any(f.get("()") is JsonFormatter for f in config.get("formatters", {}).values())
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    # uvicorn set its loggers up before it loaded the app (and Django): its lines go to this handler
    # instead, and its access log stays on or off as its command line said (off: uvicorn_argv).
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers = []
            logger.propagate = True
    if json_lines:
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(exc_type, exc_value, exc_traceback) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc_value, exc_traceback)
        return
    logging.getLogger("soulsai.uncaught").critical(
        "uncaught exception", exc_info=(exc_type, exc_value, exc_traceback)
    )


# ---------------------------------------------------------------------------------------------------
# HTTP requests


class RequestUserMiddleware:
    """Puts the request's user into the log context, without looking the user up: lines written
    after something (a view, a template) loaded the user name it; an anonymous request costs no query.

    Sync and async alike (no thread hop on the ASGI path). After AuthenticationMiddleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        token = context_set(user=_loaded_user(request))
        try:
            return self.get_response(request)
        finally:
            context_reset(token)

    async def _acall(self, request):
        token = context_set(user=_loaded_user(request))
        try:
            return await self.get_response(request)
        finally:
            context_reset(token)


def _loaded_user(request) -> Callable[[], int | None]:
    return lambda: _request_user_id(request)


def _request_user_id(request) -> int | None:
    """The id of the request's user if it was looked up already (never a query: this runs in a log
    call, possibly on the event loop); None for anonymous users and users not looked up."""
    # AuthenticationMiddleware caches the user here once request.user was first evaluated.
    user = getattr(request, "_cached_user", None)
    return user.pk if user is not None and user.is_authenticated else None
