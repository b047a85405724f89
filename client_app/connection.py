"""The websocket session with the relay, in a background thread running asyncio.

The env loop never waits on the network: it puts chunks in the spool and calls ``wake()``. This
thread sends the spooled chunks oldest first, with at most ``window`` unacknowledged on the wire,
deletes each one from the spool when the server acks (or rejects) it, forwards model notices to the
fetcher, tracks the campaign's status and the server's back-pressure, and reconnects with
exponential backoff after a dropped connection, resending everything still unacked (the relay
de-duplicates by chunk id, so resending is always safe). See docs/client.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from client_app import __version__
from client_app import protocol as P
from client_app.pacing import KB, TokenBucket
from client_app.protocol import Ack, Error, ModelNotice, Reject, Status, Welcome
from client_app.spool import Spool

log = logging.getLogger(__name__)

__all__ = ["Connection", "ConnectionState", "FatalError", "HealthProbe", "Welcome", "http_url", "probe_health",
           "stamp_made", "websocket_url"]

HELD_RETRY_S = 10.0
# The upload cap counts as holding data back for this long after the sender last waited for it.
CAPPED_FOR_S = 2.0

FATAL_CLOSE_CODES = {
    P.CLOSE_AUTH: "the server refused this machine token",
    P.CLOSE_CLOSED: "the campaign takes no experience",
    P.CLOSE_UPGRADE: "this client is too old for the server: download the current one from the portal",
    P.CLOSE_PROTOCOL: "the server did not understand this client",
}


def stamp_made(frame: bytes, made: int | None) -> bytes:
    """A chunk or result frame without ``made`` (client 0.1.0 spooled those) with ``made`` added.

    ``made`` is when the frame was spooled, before it was first sent (its spool file's modification
    time), so the relay sees its true age: within 6 days it is taken (or acked as the duplicate it
    may be), older it is refused as ``expired`` and dropped, never counted twice. The cost is one
    unpack and pack of the frame, with the caps the relay applies to a client's frame; a frame that
    has ``made`` already, or is unreadable, is sent as it is (the relay answers it).
    """
    if made is None:
        return frame
    try:
        message = P.unpack(frame, client=True)
    except P.ProtocolError:
        return frame
    if message.get("made") is not None or message["type"] not in (P.CHUNK, P.EVAL):
        return frame
    message["made"] = made
    return P.pack(message)


def websocket_url(server_url: str) -> str:
    """``http://host:port[/base]`` -> ``ws://host:port[/base]/ws/client/`` (https -> wss).

    Raises ValueError with a readable message for anything that is not an http(s) or ws(s) URL.
    """
    parts = urllib.parse.urlsplit(server_url.strip())
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(
            f"--server must be the portal's address, like https://soulsai.example.org or "
            f"http://127.0.0.1:8000, not {server_url!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"--server has an invalid port: {server_url!r}") from None
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((schemes[parts.scheme], parts.netloc, base + "ws/client/", "", ""))


def http_url(server_url: str) -> str:
    """The server's base URL for HTTP downloads (ws -> http), ending with a slash."""
    parts = urllib.parse.urlsplit(server_url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((scheme, parts.netloc, base, "", ""))


@dataclass(frozen=True)
class HealthProbe:
    """What the server's /healthz answered: an HTTP status and body, or why nothing came."""

    url: str
    status: int | None  # None: no answer
    body: bytes
    reason: str | None  # why there was no answer


def probe_health(server_url: str, *, timeout: float = 10.0, max_bytes: int = 4096) -> HealthProbe:
    """GET the server's /healthz once. Raises ValueError (naming --server) for an address that is
    not an http(s) or ws(s) URL; every network failure is an answer with ``status`` None."""
    websocket_url(server_url)  # the same check the connection makes: a readable error for a bad address
    url = http_url(server_url) + "healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return HealthProbe(url, response.status, response.read(max_bytes), None)
    except urllib.error.HTTPError as exc:
        return HealthProbe(url, exc.code, exc.read(max_bytes), None)
    except (urllib.error.URLError, OSError) as exc:
        return HealthProbe(url, None, b"", str(getattr(exc, "reason", exc)))


@dataclass(frozen=True)
class FatalError:
    """Why the server will not take this client: retrying cannot help."""

    code: str
    message: str
    close_code: int | None = None


@dataclass(frozen=True)
class ConnectionState:
    """A consistent snapshot of the session, for the env loop and the progress line."""

    state: str  # connecting | connected | retrying | stopped | failed
    campaign_status: str  # running | paused | stopped (as the server last said)
    server_model_version: int  # the campaign's current model version, from welcome, notices and acks
    sent: int  # chunk frames sent, resends included
    acked: int  # chunks the server stored (duplicates included)
    duplicates: int  # acks of chunks the server already had (a resend that was not needed)
    rejected: int  # chunks the server refused, dropped from the spool
    in_flight: int
    reconnects: int
    hold_s: float  # back-pressure: seconds the server asked us to hold off, still to go
    last_error: str | None
    fatal: FatalError | None
    sent_bytes: int = 0  # bytes of the chunk frames sent, resends included
    upload_kbps: float = 0.0  # the upload cap (--max-upload-kbps); 0: none
    upload_capped: bool = False  # the cap held a frame back in the last CAPPED_FOR_S seconds

    @property
    def connected(self) -> bool:
        return self.state == "connected"


class Connection:
    """One client's websocket session with the relay, run in its own thread.

    ``on_model`` is called (in the connection thread) with every model notice; keep it quick.
    """

    def __init__(
        self,
        *,
        server_url: str,
        token: str,
        machine: str,
        window: int = 16,
        backoff: tuple[float, float] = (1.0, 30.0),
        open_timeout: float = 10.0,
        max_upload_kbps: float = 0.0,
        on_model: Callable[[ModelNotice], None] | None = None,
        on_evaluate: Callable[[ModelNotice], None] | None = None,
        on_release: Callable[[P.ReleaseNotice], None] | None = None,
    ):
        self.url = websocket_url(server_url)
        self.token = token
        self.machine = machine
        self.window = max(1, window)
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.on_model = on_model
        self.on_evaluate = on_evaluate  # the server asks for a greedy evaluation episode of a version
        self.max_upload_kbps = max_upload_kbps  # average upload at most this many KB/s; 0: no cap
        self._upload_cap = TokenBucket(max_upload_kbps * KB) if max_upload_kbps > 0 else None
        self._capped_at = float("-inf")  # time.monotonic() when the cap last held a frame back
        self.on_release = on_release  # the server offers a newer client (client_app.autoupdate)
        self.welcome: Welcome | None = None  # the first welcome: it decides env and spaces
        self._spool: Spool | None = None
        self._lock = threading.Lock()
        self._welcomed = threading.Event()
        self._counts = dict.fromkeys(("sent", "sent_bytes", "acked", "duplicates", "rejected", "reconnects"), 0)
        self._state = "connecting"
        self._campaign_status = "running"
        self._server_model_version = 0
        self._hold_until = 0.0  # time.monotonic() before which nothing is produced or sent
        self._heard_at = time.monotonic()  # the latest frame from the server (a float: atomic to read)
        self._last_error: str | None = None
        self._fatal: FatalError | None = None
        self._in_flight: OrderedDict[str, float] = OrderedDict()  # loop thread only
        # Refused for now, not for good (id -> monotonic time to resend at): "not running" waits for
        # the campaign to run again (or HELD_RETRY_S, in case that notice never comes),
        # "rate_limited" for the wait_ms the server named.
        self._held: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="soulsai-connection", daemon=True)

    # -- the env loop's side (any thread) --------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the session (the spool stays as it is) and wait for the thread to end."""
        if self._loop is not None and self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the thread closed its loop just now (a fatal answer): it is ending
                pass
            self._thread.join(timeout)

    def attach_spool(self, spool: Spool) -> None:
        """Start sending what ``spool`` holds (called once the welcome named the campaign)."""
        self._spool = spool
        self.wake()

    def wake(self) -> None:
        """Tell the sender the spool has new chunks (thread-safe, cheap)."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop already closed
                pass

    def wait_for_welcome(self, timeout: float | None = None) -> Welcome | None:
        """The first welcome, once it came; None on timeout, a fatal error or a stopped thread."""
        self._welcomed.wait(timeout)
        return self.welcome

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def fatal(self) -> FatalError | None:
        return self._fatal

    @property
    def campaign_status(self) -> str:
        return self._campaign_status

    @property
    def connected(self) -> bool:
        """The session is up (a cheap read for the env loop's every step)."""
        return self._state == "connected"

    def hold_remaining(self) -> float:
        """Seconds of back-pressure left: the producer pauses that long."""
        return max(0.0, self._hold_until - time.monotonic())

    def silence(self) -> float:
        """Seconds since the server last sent anything (an ack, a reject, a notice, the welcome). With
        chunks waiting, a long silence means the server is gone before the socket says so: a hung
        server's connection looks up until the websocket's ping times out."""
        return max(0.0, time.monotonic() - self._heard_at)

    def upload_capped(self) -> bool:
        """The upload cap held a frame back in the last CAPPED_FOR_S seconds (a cheap read)."""
        return time.monotonic() - self._capped_at < CAPPED_FOR_S

    def snapshot(self) -> ConnectionState:
        with self._lock:
            return ConnectionState(
                state=self._state,
                campaign_status=self._campaign_status,
                server_model_version=self._server_model_version,
                sent=self._counts["sent"],
                acked=self._counts["acked"],
                duplicates=self._counts["duplicates"],
                rejected=self._counts["rejected"],
                in_flight=len(self._in_flight),
                reconnects=self._counts["reconnects"],
                hold_s=self.hold_remaining(),
                last_error=self._last_error,
                fatal=self._fatal,
                sent_bytes=self._counts["sent_bytes"],
                upload_kbps=self.max_upload_kbps,
                upload_capped=self.upload_capped(),
            )

    # -- the connection thread -------------------------------------------------------------------

    def _set(self, **fields: Any) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(self, f"_{name}", value)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        except Exception as exc:  # a bug here must not hang the env loop: report it as fatal
            log.exception("connection thread crashed")
            self._set(fatal=FatalError("internal", f"connection thread crashed: {exc}"), state="failed")
        finally:
            self._welcomed.set()
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop, self._wake = asyncio.Event(), asyncio.Event()
        self._loop = loop
        self._started.set()
        failures = 0
        while not self._stop.is_set():
            welcomed = False
            try:
                welcomed = await self._session()
            except ConnectionClosed as exc:
                self._closed(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "")
            except InvalidStatus as exc:
                code = exc.response.status_code
                self._set(
                    last_error=f"the server answered HTTP {code} at {self.url}: is --server the portal's address?"
                )
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self._set(last_error=f"cannot reach {self.url}: {exc or type(exc).__name__}")
            except P.ProtocolError as exc:
                self._set(last_error=f"the server broke the protocol: {exc.message}")
            if self._fatal is not None:
                self._set(state="failed")
                log.debug("fatal: %s", self._fatal)
                break
            if self._campaign_status == "stopped":
                self._set(state="stopped")
                break
            if self._stop.is_set():
                break
            failures = 1 if welcomed else failures + 1
            delay = self._backoff_delay(failures)
            self._set(state="retrying")
            log.warning("%s; retrying in %.0f s", self._last_error or "connection lost", delay)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass
            self._count("reconnects")
        if self._state not in ("failed", "stopped"):
            self._set(state="stopped")

    def _backoff_delay(self, failures: int) -> float:
        # Exponential with "equal jitter": half fixed, half random, so a server restart is not
        # greeted by every client at the same instant.
        low, high = self.backoff
        delay = min(high, low * 2 ** (failures - 1))
        return max(low, delay / 2 + random.uniform(0, delay / 2))

    async def _session(self) -> bool:
        """One connection: hello, welcome, then send and receive until it closes. True if welcomed."""
        self._set(state="connecting")
        async with connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            user_agent_header=f"soulsai-client/{__version__}",
            open_timeout=self.open_timeout,
            compression=None,  # float arrays barely compress; deflate would cost both sides CPU
            max_size=P.MAX_FRAME_BYTES,
        ) as ws:
            try:
                await ws.send(P.pack(P.Hello(client_version=__version__, machine=self.machine).to_wire()))
            except ConnectionClosed:
                # The server may refuse the token before our hello: its error frame is still
                # buffered, and its message is what the volunteer needs to read.
                pass
            first = P.unpack(await asyncio.wait_for(ws.recv(), self.open_timeout))
            if first["type"] == P.ERROR:
                self._on_error(Error.from_wire(first))
                return False
            if first["type"] != P.WELCOME:
                raise P.ProtocolError(P.R_SCHEMA, f"expected a welcome, got {first['type']!r}")
            self._on_welcome(Welcome.from_wire(first))
            tasks = [
                asyncio.create_task(self._receive_loop(ws)),
                asyncio.create_task(self._send_loop(ws)),
                asyncio.create_task(self._stop.wait()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._in_flight.clear()
                self._held.clear()
                self._set(state="connecting")
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()
            if ws.close_code is not None:
                self._closed(ws.close_code, ws.close_reason or "")
            return True

    def _closed(self, code: int | None, reason: str) -> None:
        if code in FATAL_CLOSE_CODES and self._fatal is None:
            self._set(fatal=FatalError("closed", reason or FATAL_CLOSE_CODES[code], code))
        elif self._campaign_status != "stopped":
            self._set(
                last_error=f"connection closed by the server (code {code}{': ' + reason if reason else ''})"
            )

    # -- messages from the server ------------------------------------------------------------------

    def _on_welcome(self, welcome: Welcome) -> None:
        if self.welcome is None:
            self.welcome = welcome
        elif welcome.campaign.get("slug") != self.welcome.campaign.get("slug"):
            raise P.ProtocolError(
                P.R_SCHEMA, "the server moved this token to another campaign: restart the client"
            )
        model = welcome.model_notice
        model_version = model.version if model else 0
        self._heard_at = time.monotonic()
        self._set(
            state="connected",
            campaign_status=str(welcome.campaign.get("status") or "running"),
            server_model_version=model_version,
            last_error=None,
        )
        log.info("connected to %s: campaign %r", self.url, welcome.campaign.get("name"))
        if model and self.on_model:
            self.on_model(model)
        self._welcomed.set()

    async def _receive_loop(self, ws: ClientConnection) -> None:
        handlers: dict[str, tuple[Callable[[dict[str, Any]], Any], Callable[[Any], None]]] = {
            P.ACK: (Ack.from_wire, self._on_ack),
            P.REJECT: (Reject.from_wire, self._on_reject),
            P.MODEL: (ModelNotice.from_wire, self._on_model),
            P.STATUS: (Status.from_wire, self._on_status),
            P.ERROR: (Error.from_wire, self._on_error),
            P.RELEASE: (P.ReleaseNotice.from_wire, self._on_release),
        }
        async for frame in ws:
            self._heard_at = time.monotonic()
            try:
                message = P.unpack(frame)
                reader, handler = handlers.get(message["type"], (None, None))
                if handler is None:
                    log.debug("ignoring a %r message", message["type"])
                    continue
                handler(reader(message))
            except (P.ProtocolError, KeyError, TypeError, ValueError) as exc:
                log.warning("ignoring a message the client does not understand: %s", exc)

    def _take_in_flight(self, chunk_id: str | None) -> str | None:
        # The relay answers chunks in order, so an answer without a usable id is the oldest one's.
        if chunk_id is not None and chunk_id in self._in_flight:
            del self._in_flight[chunk_id]
            return chunk_id
        if chunk_id is None and self._in_flight:
            return self._in_flight.popitem(last=False)[0]
        return chunk_id

    def _on_ack(self, ack: Ack) -> None:
        chunk_id = self._take_in_flight(ack.id)
        # Count before the spool forgets the chunk, so that anyone who sees the spool empty also
        # sees the ack counted (the GUI and the tests read both).
        with self._lock:
            self._counts["acked"] += 1
            self._counts["duplicates"] += 1 if ack.duplicate else 0
            self._server_model_version = max(self._server_model_version, ack.model_version)
            if ack.wait_ms > 0:
                self._hold_until = max(self._hold_until, time.monotonic() + ack.wait_ms / 1000)
        if ack.evaluate is not None and self.on_evaluate is not None:
            try:
                self.on_evaluate(ack.evaluate)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed evaluation request: %r", ack.evaluate)
        if chunk_id and self._spool is not None:
            self._spool.ack(chunk_id)
        self._wake.set()

    def _on_reject(self, reject: Reject) -> None:
        chunk_id = self._take_in_flight(reject.id)
        code, text = reject.code, reject.message
        wait_s = reject.wait_ms / 1000
        if wait_s > 0:
            with self._lock:
                self._hold_until = max(self._hold_until, time.monotonic() + wait_s)
        if code in P.RETRY_LATER_CODES and chunk_id:
            # Nothing is wrong with the chunk (the campaign is paused, or we sent too fast): keep it.
            delay = HELD_RETRY_S if code == P.R_NOT_RUNNING else wait_s
            self._held[chunk_id] = time.monotonic() + delay
            log.info("chunk %s held back: %s", chunk_id, text)
        else:
            self._count("rejected")
            if chunk_id and self._spool is not None:
                self._spool.ack(chunk_id)
            log.warning("the server refused chunk %s (%s): %s", chunk_id, code, text)
        self._wake.set()

    def _on_model(self, notice: ModelNotice) -> None:
        with self._lock:
            self._server_model_version = max(self._server_model_version, notice.version)
        if self.on_model:
            self.on_model(notice)

    def _on_release(self, notice: P.ReleaseNotice) -> None:
        if self.on_release:
            self.on_release(notice)

    def _on_status(self, notice: Status) -> None:
        status = notice.status
        self._set(campaign_status=status)
        log.warning("%s", notice.message or f"the campaign is {status}")
        if status == "running":
            self._held.clear()
        self._wake.set()

    def _on_error(self, error: Error) -> None:
        if error.code == P.R_SERVER:
            # The server failed, not this client: its close (1011) follows, and we reconnect and resend.
            self._set(last_error=error.message or "the server hit an unexpected error")
            return
        fatal = FatalError(error.code, error.message or "the server refused this client")
        self._set(fatal=fatal, last_error=fatal.message)
        self._welcomed.set()

    # -- sending -----------------------------------------------------------------------------------

    async def _send_loop(self, ws: ClientConnection) -> None:
        while True:
            self._wake.clear()
            await self._send_some(ws)
            if self._fatal is not None:
                return
            hold = self.hold_remaining()
            try:
                await asyncio.wait_for(self._wake.wait(), hold if hold > 0 else 1.0)
            except TimeoutError:
                pass

    async def _send_some(self, ws: ClientConnection) -> None:
        spool = self._spool
        if spool is None or self._campaign_status != "running":
            return
        for chunk_id in spool.pending():
            if len(self._in_flight) >= self.window or self.hold_remaining() > 0 or self._fatal is not None:
                return
            if chunk_id in self._in_flight:
                continue
            retry_at = self._held.get(chunk_id)
            if retry_at is not None:
                if time.monotonic() < retry_at:
                    continue
                del self._held[chunk_id]
            frame = spool.read(chunk_id)
            if frame is None:  # acked meanwhile
                continue
            if spool.inherited(chunk_id):  # left by an earlier process, perhaps client 0.1.0
                frame = stamp_made(frame, spool.spooled_at(chunk_id))
            if self._upload_cap is not None:
                wait = self._upload_cap.reserve(len(frame))
                if wait > 0:  # --max-upload-kbps: the frame goes whole, later
                    self._capped_at = time.monotonic() + wait
                    await asyncio.sleep(wait)
                    if self._fatal is not None:
                        return
            self._in_flight[chunk_id] = time.monotonic()
            await ws.send(frame)
            with self._lock:
                self._counts["sent"] += 1
                self._counts["sent_bytes"] += len(frame)
