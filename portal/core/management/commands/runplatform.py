"""`manage.py runplatform`: the whole platform in the foreground, on embedded defaults.

Starts the embedded Redis server (unless REDIS_URL is set), migrates, builds the client wheel,
creates the demo admin, the cartpole-demo campaign and demo volunteers' tokens, then runs the ASGI
server, a Celery worker for the learner, Celery beat and the demo clients until Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.core.processes import (
    Child,
    Supervisor,
    celery_beat_argv,
    celery_worker_argv,
    client_argv,
    client_env,
    uvicorn_argv,
)


class Command(BaseCommand):
    help = (
        "Run the whole SoulsAI platform in the foreground: embedded Redis (unless REDIS_URL is set), "
        "the ASGI server, a Celery worker for the learner queue, Celery beat and local demo clients. "
        "Ctrl-C stops everything it started."
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
            help="threads of the Celery worker: learners of running campaigns plus beat tasks (default 4)",
        )

    def handle(self, *args, **opts):
        self.sup = Supervisor()
        self.redis_proc = None
        stop = {"signal": None}

        def on_signal(signum, frame):
            stop["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        code = 0
        try:
            self.prepare(opts)
            self.launch(opts)
            code = self.watch(stop)
        finally:
            self.shutdown()
        if code:
            raise CommandError("the platform stopped because a process died (see above)", returncode=code)

    def log(self, text: str) -> None:
        self.sup.say("platform", text)

    def prepare(self, opts) -> None:
        var = Path(settings.VAR_DIR)
        if settings.EMBEDDED_REDIS:
            from portal.core.embedded import start_embedded_redis

            self.log(f"starting the embedded Redis server on 127.0.0.1:{settings.EMBEDDED_REDIS_PORT} (data in {var / 'redis'})")
            self.redis_proc = start_embedded_redis(
                port=settings.EMBEDDED_REDIS_PORT, data_dir=var / "redis", persistent=True
            )
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
        self.sup.start(Child("web", uvicorn_argv(host=host, port=port), env))
        self.sup.start(Child("learner", celery_worker_argv(concurrency=opts["worker_concurrency"],
                                                           node_name="learner@%h"), env))
        self.sup.start(Child("beat", celery_beat_argv(schedule=Path(settings.VAR_DIR) / "celerybeat-schedule"), env))
        if not self.wait_http(f"{base}/healthz", timeout=60):
            self.log("WARNING: the web server did not answer /healthz within 60 s")
        for name, token in self.tokens:
            pace = ["--max-sps", str(opts["demo_client_sps"])] if opts["demo_client_sps"] > 0 else []
            argv = client_argv(server=base, name=name, spool_dir=Path(settings.VAR_DIR) / "spool" / name, extra=pace)
            # The token goes through the environment: a command line is visible to every user (ps).
            self.sup.start(Child(name.replace("demo-", ""), argv, client_env(env, token=token), essential=False))
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

    @staticmethod
    def wait_http(url: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except Exception:
                time.sleep(0.5)
        return False

    def watch(self, stop) -> int:
        from portal.campaigns.models import Campaign

        last_report = time.monotonic()
        while stop["signal"] is None:
            dead = self.sup.check()
            if dead is not None:
                self.log(f"ERROR: {dead.name} exited with code {dead.proc.returncode}; stopping the platform")
                return 1
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                for c in Campaign.objects.public().exclude(status=Campaign.Status.STOPPED):
                    self.log(self.summary(c))
            time.sleep(0.5)
        self.log(f"received {signal.Signals(stop['signal']).name}: stopping")
        return 0

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
