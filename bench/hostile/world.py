"""The throw-away platform the cases attack, and what a case reads back from it.

``World`` is a ``harness.Sandbox`` (embedded Redis, SQLite, Django set up in this process) with the
real ASGI server (uvicorn serving ``portal.asgi``, its own process). No Celery: where a case needs
the roll-up that beat runs every 2 s it calls the same function in this process
(``stats_sync_campaign``). Every case gets its own campaign and its own volunteer and token, so that
counters, streams, rate limits and flags of one case never leak into another's verdict.
"""

from __future__ import annotations

import itertools
import json
import math
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from harness import AsgiServer, Sandbox

WS_OPEN_TIMEOUT = 5.0
ANSWER_TIMEOUT = 5.0


def settings_env() -> dict[str, str]:
    return {"DJANGO_SECRET_KEY": "hostile-bench-only-secret-key-" + "x" * 40, "DJANGO_DEBUG": "0",
            "LOG_LEVEL": "WARNING"}


@dataclass
class Figures:
    """A campaign's Redis figures, read back after a case."""

    xlen: int
    stream_bytes: int  # sum of the stored frames' sizes
    ids: list[str]  # chunk ids in the stream
    stats: dict[str, float]
    returns: list[float]
    outcomes: int
    keys: int  # keys of the campaign (hash tag {c<id>})

    @property
    def samples(self) -> int:
        return int(self.stats.get("samples", 0))


class Session:
    """A hostile client's websocket to the relay (sync websockets, bounded waits)."""

    def __init__(self, ws):
        self.ws = ws
        self.close_code: int | None = None

    def send(self, message: Any) -> bool:
        from client_app import protocol as P

        data = message if isinstance(message, (bytes, str)) else P.pack(message)
        try:
            self.ws.send(data)
            return True
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else 1006
            return False
        except OSError:
            self.close_code = self.close_code or 1006
            return False

    def recv(self, timeout: float = ANSWER_TIMEOUT) -> dict | None:
        """The next message as a map; None on a close or a time-out (``close_code`` says which)."""
        from client_app import protocol as P

        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else 1006
            return None
        try:
            return P.unpack(frame) if isinstance(frame, bytes) else {"type": "text", "text": frame}
        except P.ProtocolError:
            return {"type": "unreadable"}

    def answer(self, message: Any, timeout: float = ANSWER_TIMEOUT) -> dict | None:
        """Send and return the first ack, reject or error (skipping notices)."""
        if not self.send(message):
            return None
        while True:
            reply = self.recv(timeout)
            if reply is None or reply.get("type") in ("ack", "reject", "error", "welcome", "text", "unreadable"):
                return reply
            # model/status notices: keep reading

    def drain(self, timeout: float = 0.3) -> list[dict]:
        out = []
        while (reply := self.recv(timeout)) is not None:
            out.append(reply)
        return out

    @property
    def open(self) -> bool:
        try:
            self.ws.ping().wait(2)
            return True
        except Exception:
            return False


class World(Sandbox):
    def __init__(self, *, keep: bool = False):
        super().__init__(keep=keep, env=settings_env(), prefix="soulsai-hostile-")
        self.setup_django()
        self.web: AsgiServer | None = None
        self._n = itertools.count(1)

    def start(self) -> AsgiServer:
        self.web = self.start_asgi("web", ready_path="/healthz", extra=["--log-level", "warning"])
        return self.web

    # -- the world: campaigns, volunteers, tokens ------------------------------------------------

    def campaign(self, *, status: str = "running", env_id: str = "CartPole-v1", **fields):
        """A fresh campaign of its own (CartPole unless said), launched and synced to Redis."""
        from portal.campaigns.models import Campaign
        from portal.campaigns.services import (
            campaign_create,
            campaign_launch,
            campaign_pause,
            campaign_redis_sync,
            campaign_stop,
        )

        n = next(self._n)
        campaign = campaign_create(slug=f"h{n}", name=f"Hostile {n}", env_id=env_id)
        if fields:
            Campaign.objects.filter(pk=campaign.pk).update(**fields)
            campaign.refresh_from_db()
        if status != "draft":
            campaign = campaign_launch(campaign=campaign)
            if status == "paused":
                campaign = campaign_pause(campaign=campaign)
            elif status == "stopped":
                campaign = campaign_stop(campaign=campaign)
        campaign_redis_sync(campaign=campaign)
        return campaign

    def stop_campaign(self, campaign):
        from portal.campaigns.services import campaign_stop

        return campaign_stop(campaign=campaign)

    def user(self, *, staff: bool = False, password: str | None = None):
        """A new volunteer; without ``password`` none is hashed (hashing costs ~0.3 s in production)."""
        from django.contrib.auth import get_user_model

        n = next(self._n)
        user = get_user_model()(username=f"vol{n}", email=f"vol{n}@example.com", is_staff=staff)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        return user

    def token(self, campaign, user=None) -> tuple[Any, str]:
        """A new volunteer (unless ``user``) and a machine token of theirs on ``campaign``."""
        from portal.machines.services import token_create

        return token_create(user=user or self.user(), campaign=campaign, name="rig")

    def publish(self, campaign, version: int, *, checkpoint: bool = True):
        """A real model version of ``campaign`` (file, row, Redis, notice), as the learner publishes."""
        from client_app.policy import QNetworkSpec, save_model
        from portal.campaigns.services import model_publish

        spec = QNetworkSpec(obs_dim=4, n_actions=2, hidden=(8,))
        params = {k: np.zeros(s, np.float32) for k, s in spec.parameter_shapes().items()}
        weights = save_model(spec, params, version=version)
        return model_publish(campaign_id=campaign.id, version=version, weights=weights, is_checkpoint=checkpoint)

    # -- connections -----------------------------------------------------------------------------

    def ws_connect(self, raw_token: str | None, *, path: str = "/ws/client/", headers: dict | None = None, **kw):
        hdrs = dict(headers or {})
        if raw_token is not None:
            hdrs["Authorization"] = f"Bearer {raw_token}"
        url = f"ws://127.0.0.1:{self.web.port}{path}"
        kw.setdefault("max_size", 32 * 1024 * 1024)
        kw.setdefault("compression", None)
        return connect(url, additional_headers=hdrs, open_timeout=WS_OPEN_TIMEOUT, close_timeout=2, **kw)

    @contextmanager
    def session(self, raw_token: str, *, hello: bool = True, **kw):
        """A relay session; after the handshake when ``hello`` (``welcome`` holds the answer)."""
        from client_app import __version__
        from client_app import protocol as P

        ws = self.ws_connect(raw_token, **kw)
        s = Session(ws)
        s.welcome = None
        try:
            if hello:
                if s.send(P.hello(client_version=__version__, machine="hostile")):
                    s.welcome = s.recv()
            yield s
        finally:
            try:
                ws.close()
            except Exception:
                pass

    def log_mark(self) -> int:
        return len(self.web.output())

    def traceback_since(self, mark: int) -> bool:
        return "Traceback" in self.web.output()[mark:]

    # -- reading back --------------------------------------------------------------------------

    def redis_client(self):
        from portal.core.redis import get_redis

        return get_redis()

    def figures(self, campaign) -> Figures:
        from client_app import protocol as P
        from trainer.keys import CampaignKeys

        r, keys = self.redis_client(), CampaignKeys(campaign.id)
        entries = r.xrange(keys.stream, count=10_000)
        ids, size = [], 0
        for _, fields in entries:
            frame = fields.get(b"c", b"")
            size += len(frame)
            try:
                ids.append(str(P.unpack(frame).get("id")))
            except Exception:
                ids.append("?")
        stats = {k.decode(): float(v) for k, v in r.hgetall(keys.stats).items()}
        returns = [float(x) for x in r.lrange(keys.returns, 0, -1)]
        n_keys = sum(1 for _ in r.scan_iter(match=f"{keys.tag}:*", count=1000))
        return Figures(len(entries), size, ids, stats, returns, r.llen(keys.outcomes), n_keys)

    def sync(self, campaign):
        """The roll-up beat runs every 2 s (Redis -> rows), run here; returns the fresh row."""
        from portal.campaigns.tasks import stats_sync_campaign

        campaign.refresh_from_db()
        return stats_sync_campaign(campaign=campaign)

    def http(self, path: str, *, method: str = "GET", data: bytes | None = None, headers: dict | None = None,
             timeout: float = 10.0) -> tuple[int, bytes, dict]:
        request = urllib.request.Request(self.web.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers or {})

    def strict_json(self, path: str) -> tuple[int, Any, str | None]:
        """GET a JSON API path; (status, value, why it is not strict JSON or None)."""
        status, body, _ = self.http(path)
        return (status, *strict_loads(body))


def strict_loads(body: bytes | str) -> tuple[Any, str | None]:
    def refuse(name: str):
        raise ValueError(f"non-JSON constant {name}")

    try:
        return json.loads(body, parse_constant=refuse), None
    except ValueError as exc:
        return None, str(exc)[:120]


def finite(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))
