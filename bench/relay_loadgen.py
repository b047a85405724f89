"""The relay benches' load generator: one process drives many simulated clients on one event loop.

Each simulated client connects over a real websocket (Authorization: Bearer <token>, hello,
welcome), then streams packed chunks (a pre-packed frame with placeholders for its id and model
version, so that a new chunk costs two ``bytes.replace``) with a window of unacked chunks, as fast as
it can or paced, and records acks, rejects, waits and model notices. It behaves as the real client
does (client_app/connection.py, client_app/spool.py) where the cluster bench's drills need it:

- every chunk stays in its spool (``unacked``) until it is acknowledged; one refused only for now
  (``RETRYABLE``) is kept and sent again after the refusal's ``wait_ms``;
- a lost connection (a killed relay process, a proxy reload) is retried with a jittered back-off,
  through the same address (the proxy), and every unacked chunk is sent again on the new connection:
  the relay's de-duplication by chunk id per machine keeps that exactly-once (an ack may say
  ``duplicate``); a fatal close (44xx but 4429) ends the client;
- chunks carry the model version the client last heard of (welcome, notice or ack), so that a
  learner's new versions never make them stale, and ``made`` (the template's time).

Each interruption (a lost connection or a retryable refusal, until the next ack) is recorded with its
start and end (wall time): the bench reads recovery times from them. ``wss://`` URLs are verified
against ``cafile``; ``source_addresses`` spreads the clients over many local addresses (per-address
limits count each apart); ``netns`` runs the process in that network namespace (a volunteers' host).

``loadgen_main`` is the entry point of a spawned load-generator process; it talks to its
orchestrator over a pipe: ``{"ready", "connect_s"}`` once every client is welcomed, then for each
phase ``{"start", "end"}`` (wall times; ``end`` None: until a later ``{"end"}``), then its figures for
the phase. Without ``phased`` in its arguments (bench/relay.py) there is one phase, after which the
clients close; with it, the next message starts another phase or is ``{"stop": True}``.
"""

from __future__ import annotations

import asyncio
import collections
import random
import signal
import time

N_ACTIONS = 4
RETRYABLE = {"not_running", "rate_limited"}  # rejects after which a client keeps the chunk and resends it
FATAL_CLOSES = {4400, 4401, 4403, 4426}  # the relay's fatal close codes (client_app/protocol/codes.py)
VERSION_MARKER = b"\xce\xff\xff\xff\xff"  # model_version 0xffffffff as msgpack uint32: replaced per chunk


def _frame_template(args: dict, seed: int, id_len: int, done: bool) -> bytes:
    """A packed chunk whose id is ``#`` * id_len and whose model version is VERSION_MARKER."""
    import numpy as np

    from client_app import protocol as P

    steps, obs_dim = args["steps"], args["obs_dim"]
    rng = np.random.default_rng(seed)
    reward = args.get("reward")  # a fixed reward per step (CartPole: 1.0), or None: random
    rewards = (
        np.full(steps, reward, np.float32)
        if reward is not None
        else rng.normal(size=steps).astype(np.float32)
    )
    length = steps * max(1, args.get("episode_every") or 1)
    chunk = P.Chunk(
        id="#" * id_len,
        model_version=0xFFFFFFFF,
        obs=(rng.normal(size=(steps + 1, obs_dim)) * args.get("obs_scale", 1.0)).astype(np.float32),
        actions=rng.integers(0, args.get("n_actions", N_ACTIONS), size=steps).astype(np.int64),
        rewards=rewards,
        terminated=done,
        episode_return=(float(reward * length) if reward is not None else float(rng.normal() * 100))
        if done
        else None,
        episode_length=length if done else None,
    )
    frame = P.pack(chunk.to_message())
    assert frame.count(b"#" * id_len) == 1 and frame.count(VERSION_MARKER) == 1
    return frame


class ClientStats:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.latencies_ms: list[float] = []  # acks inside the measured window
        self.window_acks = 0
        self.window_steps = 0
        self.rejected = 0
        self.reject_codes: dict[str, int] = {}
        self.dup_acks = 0
        self.waits = 0
        self.errors: list[str] = []
        self.notices: dict[int, float] = {}  # model version -> wall time of receipt
        self.unacked_at_end = 0
        self.sent = 0
        self.resent = 0
        self.reconnects = 0
        self.interruptions: list[tuple[float, float | None]] = []  # (start, end) wall times


class SimClient:
    """One simulated volunteer's machine: its connection (kept across phases), spool and sender."""

    def __init__(
        self, index: int, tag: str, token: str, args: dict, ws_url: str, connect_sem, source: str | None
    ):
        self.index, self.token, self.args, self.ws_url = index, token, args, ws_url
        self.connect_sem, self.source = connect_sem, source
        self.stats = ClientStats()
        self.id_len = len(f"{tag}-{index:05d}-{0:09d}")
        self.tag = tag
        self.templates = [
            _frame_template(args, hash((tag, index, d)) % 2**32, self.id_len, d) for d in (False, True)
        ]
        self.unacked: collections.OrderedDict[str, bytes] = collections.OrderedDict()  # the spool
        self.in_flight: dict[str, float] = {}  # sent on this connection, unanswered: id -> perf time
        self.resend: collections.deque[str] = collections.deque()
        self.waiter: asyncio.Future | None = None  # the sender's wait (_wait), if it waits
        self.ws = None
        self.welcomed = asyncio.Event()
        self.closed = False  # the bench is done with this client
        self.failed = False  # a fatal close or refusal: the client stopped
        self.model_version = 0
        self.hold_until = 0.0
        self.down_since: float | None = None
        self.seq = 0
        self.times = {"start": float("inf"), "end": float("inf")}
        self.progress = None

    # -- the connection ---------------------------------------------------------------------------

    def _interrupted(self) -> None:
        if self.down_since is None:
            self.down_since = time.time()

    def _recovered(self, now: float) -> None:
        if self.down_since is not None:
            self.stats.interruptions.append((self.down_since, now))
            self.down_since = None

    async def _connect(self):
        import ssl

        from websockets.asyncio.client import connect

        from client_app import __version__
        from client_app import protocol as P

        kwargs = {}
        if self.ws_url.startswith("wss://"):
            kwargs["ssl"] = ssl.create_default_context(cafile=self.args.get("cafile"))
        if self.source:
            kwargs["local_addr"] = (self.source, 0)
        async with self.connect_sem:
            ws = await connect(self.ws_url, additional_headers={"Authorization": f"Bearer {self.token}"},
                               compression=None, max_size=P.MAX_FRAME_BYTES, open_timeout=60,
                               ping_interval=20, ping_timeout=60, **kwargs)  # fmt: skip
            try:
                await ws.send(P.pack(P.hello(client_version=__version__, machine=f"bench-{self.index}")))
                welcome = P.unpack(await asyncio.wait_for(ws.recv(), 60))
            except BaseException:
                await ws.close()
                raise
        return ws, welcome

    async def run(self) -> None:
        """Connect, and reconnect whenever the connection is lost, until the bench closes the client."""
        import msgpack
        from websockets.exceptions import ConnectionClosed

        from client_app import protocol as P

        delay = 0.5
        while not self.closed:
            try:
                ws, welcome = await self._connect()
            except Exception as exc:  # noqa: BLE001
                if not self.welcomed.is_set() and not self.args.get("phased"):
                    self.stats.errors.append(f"connect: {type(exc).__name__}: {exc}")
                    self.failed = True
                    return
                self._interrupted()
                await asyncio.sleep(random.uniform(0.5, 1.0) * delay)
                delay = min(delay * 2, 8.0)
                continue
            if welcome.get("type") != P.WELCOME:
                code = welcome.get("code")
                await ws.close()
                if code in (P.R_AUTH, P.R_UPGRADE, P.R_CLOSED, P.R_SCHEMA):
                    self.stats.errors.append(f"handshake: {welcome}")
                    self.failed = True
                    return
                self._interrupted()  # refused for now (a dependency down): back off and retry
                await asyncio.sleep(random.uniform(0.5, 1.0) * delay)
                delay = min(delay * 2, 8.0)
                continue
            delay = 0.5
            model = welcome.get("model") or {}
            self.model_version = max(self.model_version, int(model.get("version") or 0))
            if self.welcomed.is_set():
                self.stats.reconnects += 1
            self.ws = ws
            self.in_flight.clear()
            self.resend = collections.deque(self.unacked)  # the spool goes out again, oldest first
            self.stats.resent += len(self.resend)
            self.welcomed.set()
            self._wake()
            if not self.unacked:
                self._recovered(time.time())  # nothing to resend: back as soon as welcomed
            try:
                async for frame in ws:
                    self._on_message(msgpack.unpackb(frame, raw=False))
            except ConnectionClosed:
                pass  # the connection is gone: reconnect
            except Exception as exc:  # noqa: BLE001  (a bug of this bench: say so, and start afresh)
                self.stats.errors.append(f"receive: {type(exc).__name__}: {exc}")
                await ws.close()
            self.ws = None
            self.in_flight.clear()
            self._wake()
            if self.closed:
                break
            code = getattr(ws, "close_code", None)
            if code in FATAL_CLOSES:
                self.stats.errors.append(f"closed for good: {code} {getattr(ws, 'close_reason', '')}")
                self.failed = True
                return
            self._interrupted()
            await asyncio.sleep(random.uniform(0.2, 1.0))

    def _on_message(self, message: dict) -> None:
        now_p, now_w = time.perf_counter(), time.time()
        kind = message["type"]
        stats = self.stats
        if kind == "ack" or kind == "reject":
            cid = message["id"]
            t0 = self.in_flight.pop(cid, None)
            wait_ms = message.get("wait_ms") or 0
            if wait_ms > 0:
                stats.waits += 1
                self.hold_until = max(self.hold_until, now_p + min(wait_ms, 60_000) / 1000)
            if kind == "ack":
                if self.unacked.pop(cid, None) is not None:
                    stats.acked.append(cid)
                    self.progress[0] += 1
                if message.get("duplicate"):
                    stats.dup_acks += 1
                version = message.get("model_version")
                if isinstance(version, int):
                    self.model_version = max(self.model_version, version)
                end = self.times["end"]
                if self.times["start"] <= now_w and (end is None or now_w < end) and t0 is not None:
                    stats.latencies_ms.append((now_p - t0) * 1000)
                    stats.window_acks += 1
                    stats.window_steps += self.args["steps"]
                self._recovered(now_w)
            else:
                code = message["code"]
                stats.rejected += 1
                stats.reject_codes[code] = stats.reject_codes.get(code, 0) + 1
                if code in RETRYABLE and cid in self.unacked:
                    self.resend.append(cid)  # a real client keeps it and sends it again
                    if self.args.get("phased"):
                        self._interrupted()
                else:
                    self.unacked.pop(cid, None)  # refused for good
            self._wake()
        elif kind == "model":
            version = int(message["version"])
            stats.notices.setdefault(version, now_w)
            self.model_version = max(self.model_version, version)
        elif kind == "error":
            stats.errors.append(f"server error: {message.get('code')}: {message.get('message')}")

    # -- one phase of sending ---------------------------------------------------------------------

    def _new_frame(self) -> tuple[str, bytes]:
        every = self.args["episode_every"]
        template = self.templates[1 if every and self.seq % every == every - 1 else 0]
        cid = f"{self.tag}-{self.index:05d}-{self.seq:09d}"
        self.seq += 1
        version = b"\xce" + min(self.model_version, 0xFFFFFFFE).to_bytes(4, "big")
        return cid, template.replace(b"#" * self.id_len, cid.encode()).replace(VERSION_MARKER, version)

    def _wake(self) -> None:
        """Something the sender waits for happened (an ack, a reject, a connection up or down)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None = None) -> None:
        # A bare future and a timer: asyncio.wait_for on an Event makes a task per wait, and a paced
        # client waits twice per chunk (for its next send time, for a slot in its window).
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(timeout, _set_done, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    async def send_phase(self, phase: dict) -> None:
        """Send chunks until the phase ends, then until every chunk is acknowledged (or the grace is over)."""
        window, steps, rate = self.args["window"], self.args["steps"], self.args["rate"]
        interval = steps / rate if rate > 0 else 0.0
        perf, wall = time.perf_counter, time.time
        next_at = perf() + (random.uniform(0, interval) if interval else 0.0)
        grace_until = None
        while not self.failed:
            ending = phase["end"] is not None and wall() >= phase["end"]
            if ending:
                if grace_until is None:
                    grace_until = perf() + self.args["grace"]
                if not self.unacked or perf() >= grace_until:
                    break
            ws = self.ws
            if ws is None or len(self.in_flight) >= window:
                await self._wait(0.25)
                continue
            now = perf()
            if self.hold_until > now:
                await asyncio.sleep(self.hold_until - now)
                continue
            if self.resend:
                cid = self.resend.popleft()
                frame = self.unacked.get(cid)
                if frame is None or cid in self.in_flight:
                    continue
            elif ending:
                await self._wait(0.25)
                continue
            else:
                if next_at > now:
                    await self._wait(next_at - now)
                    continue
                cid, frame = self._new_frame()
                self.unacked[cid] = frame
                if interval:
                    next_at = max(next_at + interval, perf() - interval)  # no burst to catch up after a stall
            self.in_flight[cid] = perf()
            try:
                await ws.send(frame)
                self.stats.sent += 1
            except Exception:  # noqa: BLE001  (the receiver sees the close and reconnects; the spool keeps it)
                self.in_flight.pop(cid, None)
                self.resend.appendleft(cid)
                await self._wait(0.25)
        self.stats.unacked_at_end = len(self.unacked)


def _set_done(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _enter_netns(name: str) -> None:
    """Move this process into the named network namespace (``ip netns``'s /run/netns/NAME)."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), f"setns into network namespace {name}")
    finally:
        os.close(fd)


def loadgen_main(worker: int, conn, tokens: list[tuple[int, str]], args: dict, ws_url: str, counter,
                 down=None) -> None:  # fmt: skip
    """Entry point of one load-generator process (spawned): talks to the orchestrator over a pipe.

    ``counter`` (a shared integer) follows the acks received, ``down`` (optional) the clients whose
    connection is interrupted right now."""
    if args.get("netns"):
        _enter_netns(args["netns"])
    if args["client_loop"] == "uvloop":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator decides when to stop
    asyncio.run(_loadgen(worker, conn, tokens, args, ws_url, counter, down))


def _phase_report(clients: list[SimClient], cpu_s: float) -> dict:
    stats = [c.stats for c in clients]
    merged = {
        "acked": [cid for s in stats for cid in s.acked],
        "latencies_ms": [x for s in stats for x in s.latencies_ms],
        "window_acks": sum(s.window_acks for s in stats),
        "window_steps": sum(s.window_steps for s in stats),
        "rejected": sum(s.rejected for s in stats),
        "reject_codes": {},
        "dup_acks": sum(s.dup_acks for s in stats),
        "waits": sum(s.waits for s in stats),
        "errors": [e for s in stats for e in s.errors],
        "notices": [s.notices for s in stats],
        "unacked_at_end": sum(s.unacked_at_end for s in stats),
        "sent": sum(s.sent for s in stats),
        "resent": sum(s.resent for s in stats),
        "reconnects": sum(s.reconnects for s in stats),
        "interruptions": [i for s in stats for i in s.interruptions],
        "still_down": sum(1 for c in clients if c.down_since is not None),
        "failed": sum(1 for c in clients if c.failed),
        "clients": len(clients),
        "cpu_s": time.process_time(),
    }
    for s in stats:
        for code, n in s.reject_codes.items():
            merged["reject_codes"][code] = merged["reject_codes"].get(code, 0) + n
    return merged


async def _end_listener(loop, conn, phase: dict) -> None:
    """A phase started without an end gets it from the orchestrator's next message."""
    if phase["end"] is None:
        phase["end"] = (await loop.run_in_executor(None, conn.recv))["end"]


async def _loadgen(worker: int, conn, tokens, args, ws_url, counter, down) -> None:
    loop = asyncio.get_running_loop()
    progress = [0]
    connect_sem = asyncio.Semaphore(args["connect_concurrency"])
    tag = f"{args['run_tag']}{worker:02d}"
    sources = args.get("source_addresses") or [None]
    clients = [SimClient(index, tag, token, args, ws_url, connect_sem, sources[index % len(sources)])
               for index, token in tokens]  # fmt: skip
    for client in clients:
        client.progress = progress
    t0 = time.perf_counter()
    runners = [asyncio.create_task(c.run()) for c in clients]

    while sum(1 for c in clients if c.welcomed.is_set() or c.failed) < len(clients):
        await asyncio.sleep(0.05)
    conn.send(
        {"ready": sum(1 for c in clients if c.welcomed.is_set()), "connect_s": time.perf_counter() - t0}
    )

    async def report_progress() -> None:
        while True:
            counter.value = progress[0]
            if down is not None:
                down.value = sum(1 for c in clients if c.down_since is not None)
            await asyncio.sleep(0.1)

    reporter = asyncio.create_task(report_progress())
    first = True
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message.get("stop"):
            break
        # "measure_from": where the measured window starts (latencies), if not at the phase's start.
        phase = {"start": message.get("measure_from", message["start"]), "end": message.get("end")}
        for client in clients:
            client.times = phase
            if not first:
                client.stats = ClientStats()  # figures per phase
        first = False

        listener = asyncio.create_task(_end_listener(loop, conn, phase))
        await asyncio.sleep(max(0.0, message["start"] - time.time()))
        await asyncio.gather(*(c.send_phase(phase) for c in clients), return_exceptions=True)
        await listener
        counter.value = progress[0]
        conn.send(_phase_report(clients, time.process_time()))
        if not args.get("phased"):
            break
    for client in clients:
        client.closed = True
        if client.ws is not None:
            try:
                await asyncio.wait_for(client.ws.close(), 5)
            except Exception:  # noqa: BLE001
                pass
    for task in runners:
        task.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    reporter.cancel()
