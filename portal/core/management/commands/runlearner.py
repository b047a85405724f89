"""`manage.py runlearner --slots N`: this host becomes a learner host.

It checks what a learner host needs (the shared Redis, the portal's database, the storage engine,
the device), then replaces itself with a Celery worker on the ``learner`` queue only, with N threads:
N campaigns' learners at once. Celery's queue places learners on hosts with a free thread; there is no
scheduler of our own. See docs/deployment.md, "Adding a learner host".
"""

from __future__ import annotations

import os
import socket
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.core.processes import celery_worker_argv

LEARNER_HOST_QUEUES = ("learner",)  # learners only: beat's periodic tasks run on the data/web side
MAX_SLOTS = 64  # threads of one worker; each learner holds one for as long as its campaign runs
METRICS_MODULE = "portal.metrics.learner_host"  # serves SOULSAI_METRICS_ADDR from inside the worker


def runlearner_argv(*, slots: int, metrics: bool = False) -> list[str]:
    """The Celery worker a learner host runs: the learner queue only, ``slots`` threads, no beat;
    with ``metrics``, it serves its learners' metrics on ``SOULSAI_METRICS_ADDR``."""
    argv = celery_worker_argv(concurrency=slots, queues=LEARNER_HOST_QUEUES, node_name="learner@%h")
    return [*argv, "--include", METRICS_MODULE] if metrics else argv


class Command(BaseCommand):
    help = (
        "Run this host as a learner host: a Celery worker on the 'learner' queue only, with --slots threads "
        "(campaigns it trains at once). It needs only addresses and credentials, from the environment: "
        "REDIS_URL (the shared Redis, also Celery's broker), DATABASE_URL (the portal's database), "
        "SOULSAI_STORAGE=sftp with the SOULSAI_SFTP_* settings (model files and checkpoints), "
        "DJANGO_SECRET_KEY, and SOULSAI_DEVICE (auto, cpu or cuda; cuda refuses to start without a CUDA "
        "device); SOULSAI_METRICS_ADDR (host:port) serves its learners' Prometheus metrics. SIGTERM stops it "
        "warmly: each learner writes a checkpoint and releases its campaign, "
        "which a host with a free slot takes over. See docs/deployment.md, 'Adding a learner host'."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--slots",
            type=int,
            default=1,
            help=f"learners this host runs at once: the worker's threads on the learner queue (1 to {MAX_SLOTS}, default 1)",
        )

    def handle(self, *args, **opts):
        slots = opts["slots"]
        if not 1 <= slots <= MAX_SLOTS:
            raise CommandError(f"--slots must be between 1 and {MAX_SLOTS}, not {slots}")
        self.check_environment()
        self.check_device()
        self.check_reachable()
        metrics = self.check_metrics_address()
        argv = runlearner_argv(slots=slots, metrics=metrics)
        self.stdout.write(f"learner host: {slots} slot(s); starting {' '.join(argv[1:])}")
        self.stdout.flush()
        sys.stderr.flush()
        # Replaced, not a child: signals (SIGTERM from systemd, Ctrl-C) reach Celery itself.
        os.execv(argv[0], argv)

    def check_environment(self) -> None:
        missing = [name for name in ("REDIS_URL", "DATABASE_URL") if not os.environ.get(name)]
        if missing:
            raise CommandError(
                f"{' and '.join(missing)} not set: a learner host uses the platform's shared Redis and "
                "database (an embedded Redis or a local SQLite file would be this host's alone)"
            )
        if settings.SOULSAI_STORAGE == "local":
            self.stderr.write(
                f"warning: SOULSAI_STORAGE=local: model files and checkpoints go to {settings.MEDIA_ROOT} on "
                "this host; web hosts serve them, and other learner hosts resume from them, only if they "
                "share that folder (set SOULSAI_STORAGE=sftp: docs/deployment.md)"
            )

    def check_device(self) -> None:
        # Here, not at the top: PyTorch loads in a second or two, and only this command needs it.
        from portal.training.runner import learner_settings
        from trainer.learner import DeviceUnavailable, device_name, learner_device

        try:
            device = learner_device(learner_settings())
        except DeviceUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"learner host: device {device_name(device)} (SOULSAI_DEVICE={settings.SOULSAI_DEVICE})")

    def check_metrics_address(self) -> bool:
        """SOULSAI_METRICS_ADDR, when set, must be host:port and free: the worker serves it."""
        address = settings.SOULSAI_METRICS_ADDR
        if not address:
            return False
        from trainer.metrics import parse_address

        try:
            host, port = parse_address(address)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.create_server((host, port), family=family):
                pass  # free: the worker binds it
        except (OSError, ValueError) as exc:
            raise CommandError(f"SOULSAI_METRICS_ADDR={address}: cannot serve metrics there: {exc}") from None
        self.stdout.write(f"learner host: metrics on http://{address}/metrics")
        return True

    def check_reachable(self) -> None:
        import redis
        from django.db import connection

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=10, socket_timeout=10).ping()
        except redis.RedisError as exc:
            raise CommandError(f"cannot reach Redis at REDIS_URL: {exc}") from None
        try:
            connection.ensure_connection()
        except Exception as exc:  # the driver's own errors (psycopg, sqlite3) say what is wrong
            raise CommandError(f"cannot reach the database at DATABASE_URL: {exc}") from None
        finally:
            connection.close()
