"""Notices to connected clients: one PUBLISH reaches every ASGI process, one subscription each.

A model notice must reach 1,000 clients without 1,000 channel-layer sends (docs/architecture.md).
So the writer (``notice_publish``: a model was published, a campaign's status changed, a token was
revoked) sends ONE Redis PUBLISH on ``NOTICES_CHANNEL``. Every ASGI process holds ONE subscription
to it, opened lazily by the first client that connects, and a process-local registry of its
connected clients per campaign; a notice is handed to each local client of its campaign directly,
in batches spread over up to half a second (``dispatch``), and a model notice superseded before its
turn came is not handed out at all (``coalesce``).

Pub/sub delivers at most once: a process whose subscription drops misses what was published
meanwhile. So after every (re)subscription the process re-announces each of its campaigns' current
status and model from Redis (clients ignore what they already know), acks keep piggybacking the
current model version, and the store script itself refuses chunks of revoked tokens.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import weakref
from collections import defaultdict
from typing import Any, Protocol

from client_app.protocol import ModelNotice
from portal.core.redis import CLIENT_RELEASE_KEY, NOTICES_CHANNEL, get_async_redis, get_redis
from portal.relay import services

log = logging.getLogger(__name__)

MODEL, STATUS, REVOKED = "model", "status", "revoked"  # notice kinds
# Not per campaign: a newer signed client (to every connected client); a campaign's minimum client
# version was raised (to its clients: those older are closed with upgrade_required).
RELEASE, MIN_CLIENT = "release", "min_client"
DISPATCH_BATCH = 64  # clients handed a notice before the loop lets other work through
# A notice to every client at once is a burst through the whole path (this process's sends, the
# proxy's TLS, the clients): acks queued behind it wait, every 2 s at a learner's publishing pace.
# So the batches are spaced DISPATCH_PAUSE_S apart, closer for a process with many clients: one
# notice is handed out within DISPATCH_SPREAD_S (plus the sends' own time) however many clients
# there are. A client takes a new model at its next chunk anyway (a few seconds at the game's pace).
# bench/cluster.py, 5,000 clients, two ASGI processes: ack p99 196 ms spread over 0.25 s, 62-78 ms
# over 0.5 s (docs/deployment.md).
DISPATCH_PAUSE_S = 0.02
DISPATCH_SPREAD_S = 0.5
COALESCE_MAX = 1000  # pub/sub messages read at once (and coalesced) after a fan-out
SUBSCRIBE_WAIT_S = 2.0  # how long the first client's hello waits for the subscription at most


def notice_publish(*, kind: str, campaign_id: int, **fields: Any) -> None:
    """Tell every connected client of a campaign, in every ASGI process, with one PUBLISH."""
    payload = {"kind": kind, "campaign": campaign_id, **fields}
    get_redis().publish(NOTICES_CHANNEL, json.dumps(payload))


def release_publish(*, version: str) -> None:
    """Offer client ``version`` (signed) to clients that connect from now on and to every connected one."""
    client = get_redis()
    client.set(CLIENT_RELEASE_KEY, version)
    client.publish(NOTICES_CHANNEL, json.dumps({"kind": RELEASE, "version": version}))


def _notices(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notices of pub/sub messages (subscribe confirmations and unreadable payloads skipped)."""
    notices = []
    for message in messages:
        if message.get("type") != "message":
            continue
        try:
            notice = json.loads(message["data"])
        except (ValueError, TypeError):
            log.warning("fan-out: ignoring a notice that is not JSON")
            continue
        if isinstance(notice, dict):
            notices.append(notice)
    return notices


def coalesce(notices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``notices`` in order, each campaign's model notices reduced to its newest version (in the
    place of its first): a learner may publish faster than a fan-out to thousands of clients is
    spread (PPO's defaults publish after every update), and only the newest model is worth a client's
    download."""
    kept: list[dict[str, Any]] = []
    model_at: dict[Any, int] = {}
    for notice in notices:
        if notice.get("kind") == MODEL and isinstance(notice.get("version"), int):
            campaign = notice.get("campaign")
            at = model_at.get(campaign)
            if at is not None:
                if notice["version"] > kept[at]["version"]:
                    kept[at] = notice
                continue
            model_at[campaign] = len(kept)
        kept.append(notice)
    return kept


class Listener(Protocol):
    """A connected client as the fan-out sees it (portal.relay.consumers.ClientConsumer)."""

    async def on_notice(self, notice: dict[str, Any]) -> None: ...


class Fanout:
    """This process's registry of connected clients and its one subscription (one per event loop)."""

    def __init__(self) -> None:
        self.listeners: defaultdict[int, set[Listener]] = defaultdict(set)
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._models: dict[int, ModelNotice] = {}  # campaign -> the newest model notice seen

    def latest_model(self, campaign_id: int) -> ModelNotice | None:
        """The newest model notice this process received for the campaign."""
        return self._models.get(campaign_id)

    async def join(self, campaign_id: int, listener: Listener) -> None:
        """Register a client; the first one starts the subscription and waits (briefly) for it."""
        self.listeners[campaign_id].add(listener)
        if self._task is None or self._task.done():
            # A context of its own: it would otherwise inherit the first client's log context
            # (portal.core.logs) and name that client's campaign and machine on all its lines.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="soulsai-fanout", context=contextvars.Context()
            )
        if not self.subscribed.is_set():
            try:
                await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_WAIT_S)
            except TimeoutError:
                log.warning("fan-out: no subscription yet; notices resume when it is up")

    def leave(self, campaign_id: int, listener: Listener) -> None:
        members = self.listeners.get(campaign_id)
        if members is not None:
            members.discard(listener)
            if not members:
                del self.listeners[campaign_id]

    async def dispatch(self, notice: dict[str, Any]) -> None:
        """Hand a notice to every local client of its campaign, concurrently (one slow socket
        must not delay the others)."""
        if notice.get("kind") == MODEL:
            known = self._models.get(notice.get("campaign"))
            if known is None or known.version < notice["version"]:
                self._models[notice["campaign"]] = ModelNotice.from_wire(notice)
        if notice.get("kind") == RELEASE:
            members = [member for campaign in list(self.listeners.values()) for member in campaign]
        else:
            members = list(self.listeners.get(notice.get("campaign"), ()))
        # In batches, pausing between them: acks of other clients get through during a fan-out to
        # 1,000 clients instead of waiting behind all of it.
        batches = -(-len(members) // DISPATCH_BATCH)
        pause = min(DISPATCH_PAUSE_S, DISPATCH_SPREAD_S / max(1, batches - 1))
        for start in range(0, len(members), DISPATCH_BATCH):
            batch = members[start : start + DISPATCH_BATCH]
            results = await asyncio.gather(*(m.on_notice(notice) for m in batch), return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    log.warning("fan-out: a client failed to take a %s notice: %r", notice.get("kind"), result)
            await asyncio.sleep(pause if start + DISPATCH_BATCH < len(members) else 0)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            pubsub = get_async_redis().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTICES_CHANNEL)
                self.subscribed.set()
                delay = 0.5
                await self._resync()
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    # Everything published while the last fan-out was spreading comes at once: a model
                    # superseded by a newer one of its campaign is not handed out at all.
                    waiting = [message]
                    while len(waiting) < COALESCE_MAX and (message := await pubsub.get_message(timeout=0)):
                        waiting.append(message)
                    for notice in coalesce(_notices(waiting)):
                        await self.dispatch(notice)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: resubscribe with backoff, then resync
                self.subscribed.clear()
                log.warning("fan-out: subscription lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # the connection is already gone
                    pass

    async def _resync(self) -> None:
        """Re-announce each local campaign's current status and model (missed while unsubscribed)."""
        client = get_async_redis()
        for campaign_id in list(self.listeners):
            status = await services.current_status(client=client, campaign_id=campaign_id)
            model = await services.current_model(client=client, campaign_id=campaign_id)
            if status:
                await self.dispatch({"kind": STATUS, "campaign": campaign_id, "status": status})
            if model:
                await self.dispatch({"kind": MODEL, "campaign": campaign_id, **model.to_map()})


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def get_fanout() -> Fanout:
    """The running event loop's fan-out (uvicorn runs one loop per process)."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = Fanout()
    return fanout
