"""The one harness of the test suite and the benches: real processes on loopback, and waiting for events.

- ``harness.processes``: free ports, ``LiveProcess`` (a child with a log file, in its own process
  group), ``wait_for`` (poll until an event, or fail with the processes' logs), ``wait_http``.
- ``harness.platform``: the platform's processes, started as `make run` starts them (the command
  lines are ``portal.core.processes``'s): embedded Redis, the ASGI server, a Celery worker with
  beat, real clients; and ``Sandbox``, a throw-away platform for a bench.
- ``harness.sftp``, ``harness.postgres``, ``harness.netns``: a throw-away SFTP server, a private
  PostgreSQL, and separate hosts on one machine (network namespaces joined by veth pairs).

It lives at the top of the repository, not under ``tests/``, because bench scripts
(``python bench/x.py``) use it too and are not tests; and not in ``portal/``, because the portal
that runs in production has no use for throw-away folders and waits that fail like assertions.
"""

from harness.platform import AsgiServer, EmbeddedRedis, Sandbox, start_asgi, start_celery_worker, start_client
from harness.processes import ROOT, LiveProcess, WaitTimeout, answers_http, free_port, wait_for, wait_http

__all__ = [
    "ROOT",
    "AsgiServer",
    "EmbeddedRedis",
    "LiveProcess",
    "Sandbox",
    "WaitTimeout",
    "answers_http",
    "free_port",
    "start_asgi",
    "start_celery_worker",
    "start_client",
    "wait_for",
    "wait_http",
]
