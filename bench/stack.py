"""The real SoulsAI stack, headless, for benchmarks: embedded Redis, ASGI relay, Celery learner, clients.

``Stack`` is the harness's throw-away platform (``harness.Sandbox``: an embedded Redis or
--redis-url, a SQLite database and media folder in a temporary folder) with Django set up in the
bench's process; ``start_servers`` starts uvicorn serving portal.asgi and a Celery worker with
embedded beat on the learner and default queues, as ``make run`` does; then a campaign and real
``python -m client_app run`` clients. Everything runs in its own process group and is stopped on exit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import AsgiServer, Sandbox  # noqa: E402
from harness.processes import LiveProcess  # noqa: E402


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Stack(Sandbox):
    def __init__(self, *, redis_url: str | None = None, keep: bool = False, env: dict[str, str] | None = None):
        super().__init__(redis_url=redis_url, keep=keep, env=env)
        self.setup_django()
        self.web: AsgiServer | None = None

    @property
    def url(self) -> str:
        assert self.web is not None, "start_servers() first"
        return self.web.url

    def start_servers(self) -> None:
        """A Celery worker with beat, and uvicorn (returns once /healthz answers)."""
        self.start_celery_worker("worker")  # first: it starts while uvicorn does
        self.web = self.start_asgi("web", ready_path="/healthz")

    def campaign(
        self,
        *,
        slug: str,
        env_id: str,
        algorithm: str,
        hyperparams: dict,
        chunk_steps: int | None = None,
        env_kwargs: dict | None = None,
        max_policy_lag: int = 0,
    ):
        from portal.campaigns.services import campaign_create, campaign_launch

        campaign = campaign_create(
            slug=slug,
            name=slug,
            env_id=env_id,
            algorithm=algorithm,
            hyperparams=hyperparams,
            chunk_steps=chunk_steps,
            env_kwargs=env_kwargs,
            max_policy_lag=max_policy_lag,
        )
        return campaign_launch(campaign=campaign)

    def tokens(self, campaign, count: int) -> list[str]:
        from django.contrib.auth import get_user_model

        from portal.machines.services import token_create

        user, _ = get_user_model().objects.get_or_create(username="bench")
        return [token_create(user=user, campaign=campaign, name=f"bench-{i}")[1] for i in range(count)]

    def start_client(self, token: str, name: str, *, max_sps: float = 0.0, seed: int | None = None) -> LiveProcess:
        """A real client, quiet, optionally paced to ``max_sps`` steps/s and seeded."""
        args = ["--quiet"]
        if max_sps:
            args += ["--max-sps", str(max_sps)]
        if seed is not None:
            args += ["--seed", str(seed)]
        return super().start_client(self.url, token, name, *args)
