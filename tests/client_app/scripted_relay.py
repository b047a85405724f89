"""A small relay that speaks the client protocol over real loopback sockets, for the client's tests.

It runs ``websockets.serve`` in a thread with its own event loop and answers as the portal's relay
does (portal/relay/consumers.py and the store scripts of portal/relay/store.py and evaluation.py):
the same typed messages, the same validation (``decode_chunk`` and ``decode_eval``), the same checks
in the same order (status, then model version, then de-duplication), and the same answers: a paused
campaign still takes chunks, one that is neither running nor paused refuses them as ``not_running``.
It serves model files over plain HTTP from the same port (the real server gives model URLs as paths
on itself). Tests steer it with a few attributes and an ``after_chunk`` hook instead of mocking
anything in the client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from client_app import protocol as P
from client_app.spaces import space_to_spec


def cartpole_spaces() -> dict[str, Any]:
    env = gym.make("CartPole-v1")
    try:
        return {
            "observation": space_to_spec(env.observation_space),
            "action": space_to_spec(env.action_space),
        }
    finally:
        env.close()


TAKES_EXPERIENCE = ("running", "paused")  # as the store script: chunks of a paused campaign are kept


@dataclass
class Received:
    chunk: P.Chunk
    connection: int  # 1 for the first connection, 2 for the next...
    duplicate: bool
    held: bool = False  # refused as not running
    status: str | None = "running"  # the campaign's status when it arrived


@dataclass
class ScriptedRelay:
    """Tests set these fields before starting the client; the server thread reads them."""

    env_id: str = "CartPole-v1"
    spaces: dict[str, Any] = field(default_factory=cartpole_spaces)
    chunk_steps: int = 16
    # The campaign's status as the relay's Redis has it: running and paused take chunks; anything else
    # (stopped, a draft, None: the key is gone until the supervisor restores it) refuses them.
    status: str | None = "running"
    model: dict[str, Any] | None = None  # the current model notice ({version, url, sha256}), in the welcome
    fatal: tuple[str, str, int] | None = None  # (code, message, close code) answered to hello
    fatal_at_connect: bool = (
        False  # send the fatal error at once, before reading the hello (as the portal does)
    )
    drop_after: int | None = None  # abort the first connection after this many chunks (unacked)
    wait_ms: int = 0  # back-pressure asked in every ack
    answer: bool = True  # False: take chunks and never answer (a relay that hangs)
    files: dict[str, bytes] = field(default_factory=dict)  # HTTP path -> body
    after_chunk: Callable[[ScriptedRelay, ServerConnection, int], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        self.connections = 0
        self.hellos: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self.downloads: list[tuple[str, str | None]] = []
        self.received: list[Received] = []
        self.stored: dict[str, P.Chunk] = {}
        self.evals: dict[str, P.EvalResult] = {}
        self.rejects: list[dict[str, Any]] = []
        self.arrivals: list[tuple[float, int]] = []  # (time.monotonic(), bytes) of every frame after the hello
        self.published_version = int(self.model["version"]) if self.model else 0
        self.port = 0
        self._model_sent: dict[int, int] = {}  # connection -> newest model version it was told of
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedRelay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._http) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    # -- what the server does --------------------------------------------------------------------

    def welcome(self) -> P.Welcome:
        return P.Welcome(
            campaign={
                "slug": "cartpole-demo",
                "name": "CartPole demo",
                "env_id": self.env_id,
                "env_kwargs": {},
                "algorithm": "dqn",
                "status": self.status,
                "url": "/campaigns/cartpole-demo/",
            },
            observation_space=self.spaces["observation"],
            action_space=self.spaces["action"],
            chunk_steps=self.chunk_steps,
            model=self.model,
            machine={"name": "test machine", "prefix": "abc123def456"},
        )

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path in self.files:
            self.downloads.append((request.path, request.headers.get("Authorization")))
            body = self.files[request.path]
            headers = Headers({"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
            return Response(200, "OK", headers, body)
        if request.path != "/ws/client/":
            return connection.respond(404, "not found\n")
        return None

    async def send(self, ws: ServerConnection, message: Any) -> None:
        """Send a typed message (or, for a test that breaks the protocol on purpose, a raw map)."""
        await ws.send(P.pack(message if isinstance(message, dict) else message.to_wire()))

    async def publish_model(self, ws: ServerConnection, version: int, path: str, sha256: str) -> None:
        notice = P.ModelNotice(version=version, url=path, sha256=sha256)
        self.published_version, self.model = version, notice.to_map()
        self._model_sent[id(ws)] = version
        await self.send(ws, notice)

    async def _fatal(self, ws: ServerConnection, code: str, message: str, close_code: int) -> None:
        await self.send(ws, P.Error(code=code, message=message))
        await ws.close(close_code)

    async def _reject(self, ws: ServerConnection, item_id: str | None, code: str, message: str) -> None:
        reject = P.Reject(id=item_id, code=code, message=message).to_wire()
        self.rejects.append(reject)
        await self.send(ws, reject)

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        self.auth_headers.append(ws.request.headers.get("Authorization"))
        if self.fatal is None or not self.fatal_at_connect:
            hello = P.unpack(await ws.recv())
            self.hellos.append(hello)
            if hello["type"] != P.HELLO:
                await self._fatal(ws, P.R_SCHEMA, "the first message must be 'hello'", P.CLOSE_PROTOCOL)
                return
            if hello.get("protocol") != P.PROTOCOL_VERSION:
                await self._fatal(ws, P.R_UPGRADE, "another protocol version", P.CLOSE_UPGRADE)
                return
        if self.fatal is not None:
            await self._fatal(ws, *self.fatal)
            return
        if self.status not in TAKES_EXPERIENCE:
            await self._fatal(ws, P.R_CLOSED, f"the campaign is {self.status}", P.CLOSE_CLOSED)
            return
        welcome = self.welcome()
        self._model_sent[id(ws)] = int(welcome.model["version"]) if welcome.model else 0
        await self.send(ws, welcome)
        schema = P.ChunkSchema.from_spaces(
            observation_space=self.spaces["observation"],
            action_space=self.spaces["action"],
            max_steps=self.chunk_steps,
        )
        on_this_connection = 0
        async for frame in ws:
            self.arrivals.append((time.monotonic(), len(frame)))
            message = P.unpack(frame)
            item_id = message.get("id") if isinstance(message.get("id"), str) else None
            if message["type"] == P.EVAL:
                await self._on_eval(ws, message, item_id)
                continue
            try:
                chunk = P.decode_chunk(message, schema=schema)
            except P.ProtocolError as exc:
                await self._reject(ws, item_id, exc.code, exc.message)
                continue
            on_this_connection += 1
            if not self.answer:
                self.received.append(Received(chunk, number, chunk.id in self.stored, status=self.status))
                continue
            if self.drop_after is not None and number == 1 and on_this_connection == self.drop_after:
                self.received.append(Received(chunk, number, chunk.id in self.stored, status=self.status))
                ws.transport.abort()  # a dropped line: no close frame, no ack
                return
            # The store script's checks, in its order.
            if self.status not in TAKES_EXPERIENCE:
                self.received.append(Received(chunk, number, chunk.id in self.stored, held=True, status=self.status))
                await self._reject(ws, chunk.id, P.R_NOT_RUNNING, "the campaign is not running")
                continue
            if chunk.model_version > self.published_version:
                await self._reject(
                    ws, chunk.id, P.R_MODEL_VERSION,
                    f"model version {chunk.model_version} does not exist (current: {self.published_version})",
                )
                continue
            duplicate = chunk.id in self.stored
            self.received.append(Received(chunk, number, duplicate, status=self.status))
            self.stored[chunk.id] = chunk
            await self.send(
                ws,
                P.Ack(id=chunk.id, duplicate=duplicate, model_version=self.published_version, wait_ms=self.wait_ms),
            )
            # Piggyback, as the relay does: an ack is followed by the current model if this
            # connection was not told of it yet.
            if self.model and self.published_version > self._model_sent.get(id(ws), 0):
                self._model_sent[id(ws)] = self.published_version
                await self.send(ws, P.ModelNotice.from_wire(self.model))
            if self.after_chunk is not None:
                await self.after_chunk(self, ws, len(self.stored))

    async def _on_eval(self, ws: ServerConnection, message: dict[str, Any], item_id: str | None) -> None:
        try:
            result = P.decode_eval(message)
        except P.ProtocolError as exc:
            await self._reject(ws, item_id, exc.code, exc.message)
            return
        if result.model_version > self.published_version:
            await self._reject(ws, result.id, P.R_MODEL_VERSION, f"model version {result.model_version} does not exist")
            return
        duplicate = result.id in self.evals
        self.evals[result.id] = result
        await self.send(ws, P.Ack(id=result.id, duplicate=duplicate))

    async def set_status(self, ws: ServerConnection, status: str, message: str = "") -> None:
        self.status = status
        await self.send(ws, P.Status(status=status, message=message or f"campaign {status}"))
        if status == "stopped":
            await ws.close(1000)
