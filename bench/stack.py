"""The real SoulsAI stack, headless, for benchmarks: embedded Redis, ASGI relay, Celery learner, clients.

``Stack`` starts an embedded Redis (or uses --redis-url), a throw-away SQLite database and media
folder, uvicorn serving portal.asgi, and a Celery worker with embedded beat on the learner and default
queues, exactly as ``make run`` does; then a campaign and real ``python -m client_app run`` clients.
Everything runs in its own process group and is stopped on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, *, redis_url: str | None = None, keep: bool = False):
        self.tmp = Path(tempfile.mkdtemp(prefix="soulsai-bench-"))
        self.keep = keep
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.redis_proc = None
        if redis_url is None:
            sys.path.insert(0, str(ROOT))
            from portal.core.embedded import start_embedded_redis

            port = free_port()
            self.redis_proc = start_embedded_redis(port=port, data_dir=self.tmp / "redis")
            redis_url = f"redis://127.0.0.1:{port}/0"
        else:
            import redis

            redis.Redis.from_url(redis_url).flushdb()
        self.redis_url = redis_url
        self.env = dict(os.environ)
        self.env.update(
            SOULSAI_VAR_DIR=str(self.tmp / "var"),
            REDIS_URL=redis_url,
            DJANGO_SETTINGS_MODULE="portal.settings",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
        )
        self.env.pop("DATABASE_URL", None)
        os.environ.update({k: self.env[k] for k in ("SOULSAI_VAR_DIR", "REDIS_URL", "DJANGO_SETTINGS_MODULE")})
        os.environ.pop("DATABASE_URL", None)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            argv, env=self.env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc, log))
        return proc

    def start_servers(self) -> None:
        py = sys.executable
        self.spawn("web", [py, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
                           "--port", str(self.port), "--no-access-log", "--lifespan", "off"])
        self.spawn("worker", [py, "-m", "celery", "-A", "portal", "worker", "-B", "-Q", "learner,celery",
                              "-P", "threads", "-c", "4", "--loglevel", "INFO", "--without-gossip",
                              "--without-mingle", "-s", str(self.tmp / "beat-schedule")])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError(f"the ASGI server did not answer within 60 s; see {self.tmp / 'web.log'}")

    def campaign(self, *, slug: str, env_id: str, algorithm: str, hyperparams: dict, chunk_steps: int | None = None):
        from portal.campaigns.services import campaign_create, campaign_launch

        campaign = campaign_create(
            slug=slug, name=slug, env_id=env_id, algorithm=algorithm, hyperparams=hyperparams, chunk_steps=chunk_steps
        )
        return campaign_launch(campaign=campaign)

    def tokens(self, campaign, count: int) -> list[str]:
        from django.contrib.auth import get_user_model

        from portal.machines.services import token_create

        user, _ = get_user_model().objects.get_or_create(username="bench")
        return [token_create(user=user, campaign=campaign, name=f"bench-{i}")[1] for i in range(count)]

    def start_client(self, token: str, name: str, *, max_sps: float = 0.0, seed: int | None = None) -> None:
        argv = [sys.executable, "-m", "client_app", "run", "--server", self.url, "--token", token,
                "--name", name, "--spool-dir", str(self.tmp / "spool" / name), "--quiet"]
        if max_sps:
            argv += ["--max-sps", str(max_sps)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        self.spawn(name, argv)

    def check_alive(self) -> None:
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.redis_proc is not None:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)
        if not self.keep:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
