"""A small relay that speaks the client protocol over real loopback sockets, for the client's tests.

It runs ``websockets.serve`` in a thread with its own event loop, validates every chunk with the
shared ``decode_chunk`` exactly as the portal's relay does, and serves model files over plain HTTP
from the same port (the real server gives model URLs as paths on itself). Tests steer it with a few
attributes and an ``after_chunk`` hook instead of mocking anything in the client.
"""

from __future__ import annotations

import asyncio
import threading
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


@dataclass
class Received:
    chunk: P.Chunk
    connection: int  # 1 for the first connection, 2 for the next...
    duplicate: bool
    held: bool = False  # refused as not running


@dataclass
class ScriptedRelay:
    """Tests set these fields before starting the client; the server thread reads them."""

    env_id: str = "CartPole-v1"
    spaces: dict[str, Any] = field(default_factory=cartpole_spaces)
    chunk_steps: int = 16
    status: str = "running"
    model: dict[str, Any] | None = None  # the model notice in the welcome
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
        self.rejects: list[dict[str, Any]] = []
        self.published_version = int(self.model["version"]) if self.model else 0
        self.port = 0
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

    def welcome(self) -> dict[str, Any]:
        return {
            "type": P.WELCOME,
            "protocol": P.PROTOCOL_VERSION,
            "campaign": {
                "slug": "cartpole-demo",
                "name": "CartPole demo",
                "env_id": self.env_id,
                "env_kwargs": {},
                "algorithm": "dqn",
                "status": self.status,
                "url": "/campaigns/cartpole-demo/",
            },
            "spaces": self.spaces,
            "chunk_steps": self.chunk_steps,
            "model": self.model,
            "machine": {"name": "test machine", "prefix": "abc123def456"},
        }

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path in self.files:
            self.downloads.append((request.path, request.headers.get("Authorization")))
            body = self.files[request.path]
            headers = Headers({"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
            return Response(200, "OK", headers, body)
        if request.path != "/ws/client/":
            return connection.respond(404, "not found\n")
        return None

    async def send(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        await ws.send(P.pack(message))

    async def publish_model(self, ws: ServerConnection, version: int, path: str, sha256: str) -> None:
        self.published_version = version
        await self.send(ws, {"type": P.MODEL, "version": version, "url": path, "sha256": sha256})

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        self.auth_headers.append(ws.request.headers.get("Authorization"))
        if self.fatal is None or not self.fatal_at_connect:
            self.hellos.append(P.unpack(await ws.recv()))
        if self.fatal is not None:
            code, message, close_code = self.fatal
            await self.send(ws, {"type": P.ERROR, "code": code, "message": message})
            await ws.close(close_code)
            return
        await self.send(ws, self.welcome())
        on_this_connection = 0
        async for frame in ws:
            message = P.unpack(frame)
            try:
                chunk = P.decode_chunk(
                    message,
                    observation_space=self.spaces["observation"],
                    action_space=self.spaces["action"],
                    max_steps=self.chunk_steps,
                )
                if chunk.model_version > self.published_version:
                    raise P.ProtocolError(
                        P.R_MODEL_VERSION, f"model version {chunk.model_version} does not exist"
                    )
            except P.ProtocolError as exc:
                reject = {"type": P.REJECT, "id": message.get("id"), "code": exc.code, "message": exc.message}
                self.rejects.append(reject)
                await self.send(ws, reject)
                continue
            on_this_connection += 1
            if not self.answer:
                self.received.append(Received(chunk, number, chunk.id in self.stored))
                continue
            if self.drop_after is not None and number == 1 and on_this_connection == self.drop_after:
                self.received.append(Received(chunk, number, chunk.id in self.stored))
                ws.transport.abort()  # a dropped line: no close frame, no ack
                return
            if self.status != "running":
                self.received.append(Received(chunk, number, chunk.id in self.stored, held=True))
                await self.send(
                    ws,
                    {
                        "type": P.REJECT,
                        "id": chunk.id,
                        "code": P.R_NOT_RUNNING,
                        "message": "the campaign is not running",
                    },
                )
                continue
            duplicate = chunk.id in self.stored
            self.received.append(Received(chunk, number, duplicate))
            self.stored[chunk.id] = chunk
            await self.send(
                ws,
                {
                    "type": P.ACK,
                    "id": chunk.id,
                    "duplicate": duplicate,
                    "model_version": self.published_version,
                    "wait_ms": self.wait_ms,
                },
            )
            if self.after_chunk is not None:
                await self.after_chunk(self, ws, len(self.stored))

    async def set_status(self, ws: ServerConnection, status: str, message: str = "") -> None:
        self.status = status
        await self.send(ws, {"type": P.STATUS, "status": status, "message": message or f"campaign {status}"})
        if status == "stopped":
            await ws.close(1000)
