"""`manage.py runplatform`: the whole platform in the foreground, on embedded defaults.

Starts the embedded Redis server (unless REDIS_URL is set), migrates, builds the client wheel,
creates the demo admin, the cartpole-demo campaign and demo volunteers' tokens, then runs the ASGI
server, a Celery worker for the learners, a Celery worker for beat's periodic tasks, Celery beat and
the demo clients until Ctrl-C.

SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) stop every process it started, at any
moment, start-up included: the signal interrupts whatever start-up step is under way, except the
start of one process, which is finished first so that the process is known and stopped with the rest.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.core.processes import (
    LEARNER_QUEUES,
    PERIODIC_QUEUES,
    Child,
    Supervisor,
    celery_beat_argv,
    celery_worker_argv,
    client_argv,
    client_env,
    uvicorn_argv,
)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopPlatform(BaseException):  # noqa: N818  (like KeyboardInterrupt: no `except Exception` swallows it)
    """A stop signal arrived: unwind whatever is under way to the shutdown."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ProcessDied(Exception):
    """The embedded Redis or an essential child exited: the platform stops (exit code 1)."""


class Command(BaseCommand):
    help = (
        "Run the whole SoulsAI platform in the foreground: embedded Redis (unless REDIS_URL is set), "
        "the ASGI server, a Celery worker for the learners, one for beat's periodic tasks, Celery beat "
        "and local demo clients. Ctrl-C, SIGTERM or closing the terminal stops everything it started."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address to listen on (HOST)")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="HTTP port (PORT, default 8000)")
        parser.add_argument(
            "--demo-clients", type=int, default=int(os.environ.get("DEMO_CLIENTS", "2")),
            help="local demo clients to start (DEMO_CLIENTS, default 2; 0 for none)",
        )
        parser.add_argument(
            "--arena-clients", type=int, default=int(os.environ.get("ARENA_CLIENTS", "0")),
            help="local clients for the iudex-arena-demo boss fight (ARENA_CLIENTS, default 0: join it yourself)",
        )
        parser.add_argument(
            "--demo-client-sps", type=float, default=float(os.environ.get("DEMO_CLIENT_SPS", "0")),
            help="pace each demo client to this many steps/s (DEMO_CLIENT_SPS, default 0: as fast as the learner takes)",
        )
        parser.add_argument(
            "--worker-concurrency", type=int, default=int(os.environ.get("CELERY_CONCURRENCY", "4")),
            help="threads of the learners' Celery worker: learners of running campaigns at once (default 4)",
        )
        parser.add_argument(
            "--periodic-concurrency", type=int, default=int(os.environ.get("CELERY_PERIODIC_CONCURRENCY", "2")),
            help="threads of the Celery worker for beat's periodic tasks: stats, supervision, leaderboards (default 2)",
        )

    def handle(self, *args, **opts):
        self.sup = Supervisor()
        self.redis_proc = None
        self.stop_signal: int | None = None
        self.stopping = False
        self.critical_depth = 0
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.on_signal)
        code = 0
        try:
            self.prepare(opts)
            self.launch(opts)
            self.watch()
        except StopPlatform as stop:
            self.log(f"received {stop}: stopping")
        except ProcessDied as died:
            self.log(f"ERROR: {died}; stopping the platform")
            code = 1
        finally:
            self.stopping = True  # signals from here on are noted only: the shutdown runs to its end
            self.shutdown()
        if code:
            raise CommandError("the platform stopped because a process died (see above)", returncode=code)

    def on_signal(self, signum, frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        if not self.stopping and self.critical_depth == 0:
            self.unwind()

    def unwind(self) -> None:
        """Raise StopPlatform, once: a second signal while stopping is noted only."""
        self.stopping = True
        raise StopPlatform(self.stop_signal)

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Defer a stop signal until the block is done: a process being started gets known, then stopped."""
        self.critical_depth += 1
        try:
            yield
        finally:
            self.critical_depth -= 1
        if self.critical_depth == 0 and self.stop_signal is not None and not self.stopping:
            self.unwind()

    def start(self, child: Child) -> Child:
        with self.critical():
            return self.sup.start(child)

    def log(self, text: str) -> None:
        self.sup.say("platform", text)

    def prepare(self, opts) -> None:
        var = Path(settings.VAR_DIR)
        if settings.EMBEDDED_REDIS:
            from portal.core.embedded import start_embedded_redis

            port, data_dir = settings.EMBEDDED_REDIS_PORT, var / "redis"
            self.stop_leftover_redis(port, data_dir)
            self.log(f"starting the embedded Redis server on 127.0.0.1:{port} (data in {data_dir})")
            with self.critical():
                try:
                    self.redis_proc = start_embedded_redis(port=port, data_dir=data_dir, persistent=True)
                except RuntimeError as exc:
                    raise CommandError(str(exc)) from None
        else:
            self.log(f"using the Redis server at {settings.REDIS_URL}")
        db = settings.DATABASES["default"]
        self.log(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")
        call_command("migrate", interactive=False, verbosity=0)
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        try:
            call_command("build_client_wheel", verbosity=0)
            self.log("client wheel built for the download page")
        except Exception as exc:  # the portal still runs; the download page says the wheel is missing
            self.log(f"WARNING: could not build the client wheel: {exc}")

        from portal.core import demo

        password_file = Path(settings.VAR_DIR) / "demo-admin-password.txt"
        user, password = demo.demo_admin_ensure(password_file=password_file)
        if password:
            self.log(f"demo admin created: username '{user}', password '{password}'")
            self.log(f"  (shown once; saved to {password_file}, which git ignores)")
        else:
            self.log(f"demo admin: username '{user}', password in {password_file}")
        self.campaigns = demo.demo_campaigns_ensure()
        self.tokens = []
        if opts["demo_clients"] > 0:
            self.tokens = demo.demo_tokens_issue(campaign=self.campaigns[0], count=opts["demo_clients"])
        if opts["arena_clients"] > 0:
            self.tokens += demo.demo_tokens_issue(
                campaign=self.campaigns[1], count=opts["arena_clients"], prefix="arena-client"
            )

    def launch(self, opts) -> None:
        env = dict(os.environ)
        env["REDIS_URL"] = settings.REDIS_URL
        env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
        env["PYTHONUNBUFFERED"] = "1"
        host, port = opts["host"], opts["port"]
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        self.base = base
        self.check_port_free(host, port)
        self.start(Child("web", uvicorn_argv(host=host, port=port), env))
        # Learners hold their worker's threads for as long as they run: beat's periodic tasks (stats,
        # supervision, leaderboards) get a worker of their own, so they never wait behind learners.
        self.start(Child("learner", celery_worker_argv(concurrency=opts["worker_concurrency"], queues=LEARNER_QUEUES,
                                                       node_name="learner@%h"), env))
        self.start(Child("periodic", celery_worker_argv(concurrency=opts["periodic_concurrency"],
                                                        queues=PERIODIC_QUEUES, node_name="periodic@%h"), env))
        self.start(Child("beat", celery_beat_argv(schedule=Path(settings.VAR_DIR) / "celerybeat-schedule"), env))
        if not self.wait_http(f"{base}/healthz", timeout=60):
            self.log("WARNING: the web server did not answer /healthz within 60 s")
        for name, token in self.tokens:
            pace = ["--max-sps", str(opts["demo_client_sps"])] if opts["demo_client_sps"] > 0 else []
            argv = client_argv(server=base, name=name, spool_dir=Path(settings.VAR_DIR) / "spool" / name, extra=pace)
            # The token goes through the environment: a command line is visible to every user (ps).
            self.start(Child(name.replace("demo-", ""), argv, client_env(env, token=token), essential=False))
        slug = self.campaigns[0].slug
        self.log("")
        self.log(f"SoulsAI is running at {base}/")
        self.log(f"  campaign page  {base}/campaigns/{slug}/")
        self.log(f"  live API       {base}/api/campaigns/{slug}/")
        if opts["arena_clients"] > 0:
            self.log(f"  boss fight     {base}/campaigns/{self.campaigns[1].slug}/")
        self.log(f"  admin          {base}/admin/")
        self.log("Press Ctrl-C to stop everything.")
        self.log("")

    def wait_http(self, url: str, timeout: float) -> bool:
        """Wait for ``url`` to answer; stop waiting (ProcessDied) if Redis or an essential process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.raise_if_dead()
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except Exception:
                time.sleep(0.5)
        return False

    def raise_if_dead(self) -> None:
        """ProcessDied when the embedded Redis or an essential child has exited (others are restarted)."""
        if self.redis_proc is not None and self.redis_proc.poll() is not None:
            raise ProcessDied(f"the embedded Redis server exited with code {self.redis_proc.returncode}")
        with self.critical():
            dead = self.sup.check()
        if dead is not None:
            raise ProcessDied(f"{dead.name} exited with code {dead.proc.returncode}")

    def watch(self) -> None:
        from portal.campaigns.models import Campaign

        last_report = time.monotonic()
        while True:
            self.raise_if_dead()
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                for c in Campaign.objects.public().exclude(status=Campaign.Status.STOPPED):
                    self.log(self.summary(c))
            time.sleep(0.5)

    def stop_leftover_redis(self, port: int, data_dir: Path) -> None:
        """A Redis on our port that keeps our data folder was left by an earlier run (killed before it could
        stop it): shut it down (it writes its data out first) and start afresh. Any other server there is
        reported, not touched."""
        probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=5)
        try:
            their_dir = probe.config_get("dir").get("dir")
        except redis.ConnectionError:
            return  # nothing there
        except redis.RedisError:
            their_dir = None
        if their_dir is None or Path(their_dir).resolve() != data_dir.resolve():
            raise CommandError(
                f"port {port} already has a Redis server that is not this platform's (its data is not in "
                f"{data_dir}): stop it, set EMBEDDED_REDIS_PORT to a free port, or set REDIS_URL to use it"
            )
        self.log(f"a Redis server left running by an earlier run holds port {port}: stopping it first")
        with self.critical():
            try:
                probe.shutdown()
            except redis.ConnectionError:
                pass  # it closes the connection as it exits
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    probe.ping()
                except redis.ConnectionError:
                    return
                time.sleep(0.1)
        raise CommandError(f"the Redis server left on port {port} did not stop within 30 s: stop it by hand")

    def check_port_free(self, host: str, port: int) -> None:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                raise CommandError(
                    f"port {port} on {host} is in use ({exc.strerror}): is another `make run` still running? "
                    "Stop it, or pick another port with PORT=..."
                ) from None

    @staticmethod
    def summary(c) -> str:
        """One line on a campaign: its model, counters and returns; a boss fight's win rates too."""
        def fmt(value: float) -> str:  # CartPole's hundreds and a boss fight's fractions alike
            return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"

        ret = "-" if c.mean_return_recent is None else fmt(c.mean_return_recent)
        line = (f"{c.slug}: {c.status}, model v{c.model_version}, {c.samples_total:,} samples, "
                f"{c.episodes_total:,} episodes, {c.clients_active} clients, mean return {ret}")
        if c.win_rate_recent is not None:
            line += f", won {c.win_rate_recent:.0%} of the last fights"
        if c.eval_version is not None:
            line += f"; evaluation of v{c.eval_version}: return {fmt(c.eval_return)}"
            if c.eval_win_rate is not None:
                line += f", won {c.eval_win_rate:.0%}"
        return line

    def shutdown(self) -> None:
        stopped = self.sup.stop_all()
        if self.redis_proc is not None:
            from portal.core.embedded import stop_process

            stop_process(self.redis_proc)
            stopped += 1
        self.log(f"stopped {stopped} processes; nothing left running")
