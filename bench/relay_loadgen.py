"""The relay bench's load generator: one process drives many simulated clients on one event loop.

Each simulated client connects over a real websocket (Authorization: Bearer <token>, hello,
welcome), then streams packed chunks (a pre-packed frame split around its id, so that a new chunk
costs one bytes concatenation) with a window of unacked chunks, as fast as it can or paced, keeps
and resends a chunk refused only for now (``RETRYABLE``), and records acks, rejects, waits and model
notices. ``loadgen_main`` is the entry point of a spawned load-generator process; it talks to the
orchestrator (bench/relay.py) over a pipe: ``{"ready", "connect_s"}`` once every client is welcomed,
then ``{"start", "end"}`` (the measured window, wall time) from the orchestrator, then its merged
figures when its clients are done.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

N_ACTIONS = 4
RETRYABLE = {"not_running", "rate_limited"}  # rejects after which a client keeps the chunk and resends it


def _frame_template(steps: int, obs_dim: int, seed: int, id_len: int, done: bool) -> tuple[bytes, bytes]:
    """A packed chunk split around its id, so that a new chunk costs one bytes concatenation."""
    import numpy as np

    from client_app import protocol as P

    rng = np.random.default_rng(seed)
    placeholder = "#" * id_len
    chunk = P.Chunk(
        id=placeholder,
        model_version=0,
        obs=rng.normal(size=(steps + 1, obs_dim)).astype(np.float32),
        actions=rng.integers(0, N_ACTIONS, size=steps).astype(np.int64),
        rewards=rng.normal(size=steps).astype(np.float32),
        terminated=done,
        episode_return=float(rng.normal() * 100) if done else None,
        episode_length=steps * 4 if done else None,
    )
    frame = P.pack(chunk.to_message())
    marker = P.pack(placeholder)[-id_len:]
    at = frame.index(marker)
    assert frame.count(marker) == 1
    return frame[:at], frame[at + id_len:]


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


async def run_client(index: int, tag: str, token: str, args: dict, ws_url: str, start: asyncio.Event,
                     times: dict, stats: ClientStats, connected: list, progress, connect_sem) -> None:
    import msgpack
    from websockets.asyncio.client import connect

    from client_app import __version__
    from client_app import protocol as P

    steps, window, rate = args["steps"], args["window"], args["rate"]
    id_len = len(f"{tag}-{index:05d}-{0:09d}")
    templates = [_frame_template(steps, args["obs_dim"], hash((tag, index, d)) % 2**32, id_len, d)
                 for d in (False, True)]
    episode_every = args["episode_every"]
    sent_at: dict[str, float] = {}
    frames: dict[str, bytes] = {}  # unacked frames, for resending a chunk refused only for now
    resend: list[str] = []
    slots = asyncio.Semaphore(window)
    hold_until = 0.0
    stop_sending = asyncio.Event()
    done_receiving = asyncio.Event()
    perf, wall = time.perf_counter, time.time

    try:
        async with connect_sem:
            ws = await connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"},
                               compression=None, max_size=P.MAX_FRAME_BYTES, open_timeout=60,
                               ping_interval=20, ping_timeout=60)
            await ws.send(P.pack(P.hello(client_version=__version__, machine=f"bench-{index}")))
            welcome = P.unpack(await asyncio.wait_for(ws.recv(), 60))
        if welcome["type"] != P.WELCOME:
            stats.errors.append(f"handshake: {welcome}")
            return
    except Exception as exc:  # noqa: BLE001
        stats.errors.append(f"connect: {type(exc).__name__}: {exc}")
        return
    connected.append(index)

    async def receiver() -> None:
        nonlocal hold_until
        unpackb = msgpack.unpackb
        try:
            async for frame in ws:
                now_p, now_w = perf(), wall()
                message = unpackb(frame, raw=False)
                kind = message["type"]
                if kind == "ack" or kind == "reject":
                    cid = message["id"]
                    t0 = sent_at.pop(cid, None)
                    frame_sent = frames.pop(cid, None)
                    slots.release()
                    wait_ms = message.get("wait_ms") or 0
                    if wait_ms > 0:
                        stats.waits += 1
                        hold_until = max(hold_until, now_p + wait_ms / 1000)
                    if kind == "ack":
                        stats.acked.append(cid)
                        if message["duplicate"]:
                            stats.dup_acks += 1
                        if times["start"] <= now_w < times["end"] and t0 is not None:
                            stats.latencies_ms.append((now_p - t0) * 1000)
                            stats.window_acks += 1
                            stats.window_steps += steps
                        progress[0] += 1
                    else:
                        stats.rejected += 1
                        stats.reject_codes[message["code"]] = stats.reject_codes.get(message["code"], 0) + 1
                        if message["code"] in RETRYABLE and frame_sent is not None:
                            frames[cid] = frame_sent  # a real client keeps it and sends it again
                            resend.append(cid)
                elif kind == "model":
                    stats.notices.setdefault(int(message["version"]), now_w)
                elif kind == "error":
                    stats.errors.append(f"server error: {message.get('code')}: {message.get('message')}")
                if stop_sending.is_set() and not sent_at:
                    break
        except Exception as exc:  # noqa: BLE001
            stats.errors.append(f"receive: {type(exc).__name__}: {exc}")
        finally:
            done_receiving.set()
            for _ in range(window):
                slots.release()  # a sender waiting for a slot sees the end

    recv_task = asyncio.create_task(receiver())
    await start.wait()
    end_wall = times["end"]
    seq = 0
    interval = steps / rate if rate > 0 else 0.0
    next_at = perf() + (random.uniform(0, interval) if interval else 0.0)
    try:
        while not done_receiving.is_set():
            await slots.acquire()
            now = perf()
            delay = max(next_at, hold_until) - now
            if delay > 0:
                await asyncio.sleep(delay)
            if wall() >= end_wall:
                slots.release()
                break
            if resend:
                cid = resend.pop(0)
                frame = frames[cid]
            else:
                head, tail = templates[1 if episode_every and seq % episode_every == episode_every - 1 else 0]
                cid = f"{tag}-{index:05d}-{seq:09d}"
                frame = frames[cid] = head + cid.encode() + tail
                seq += 1
            sent_at[cid] = perf()
            await ws.send(frame)
            stats.sent += 1
            if interval:
                next_at = max(next_at + interval, perf() - interval)  # no burst to catch up after a stall
    except Exception as exc:  # noqa: BLE001
        stats.errors.append(f"send: {type(exc).__name__}: {exc}")
    stop_sending.set()
    if not sent_at:
        recv_task.cancel()
    try:
        await asyncio.wait_for(asyncio.shield(recv_task), args["grace"])
    except (TimeoutError, asyncio.CancelledError):
        recv_task.cancel()
    stats.unacked_at_end = len(sent_at)
    try:
        await asyncio.wait_for(ws.close(), 5)
    except Exception:  # noqa: BLE001
        pass


def loadgen_main(worker: int, conn, tokens: list[tuple[int, str]], args: dict, ws_url: str, counter) -> None:
    """Entry point of one load-generator process (spawned): talks to the orchestrator over a pipe."""
    if args["client_loop"] == "uvloop":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator decides when to stop
    asyncio.run(_loadgen(worker, conn, tokens, args, ws_url, counter))


async def _loadgen(worker: int, conn, tokens, args, ws_url, counter) -> None:
    loop = asyncio.get_running_loop()
    start = asyncio.Event()
    times = {"start": float("inf"), "end": float("inf")}
    connected: list[int] = []
    progress = [0]
    connect_sem = asyncio.Semaphore(args["connect_concurrency"])
    tag = f"{args['run_tag']}{worker:02d}"
    stats = {index: ClientStats() for index, _ in tokens}
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(run_client(index, tag, token, args, ws_url, start, times, stats[index],
                                            connected, progress, connect_sem)) for index, token in tokens]

    async def connected_all() -> None:
        while len(connected) + sum(1 for s in stats.values() if s.errors) < len(tokens):
            await asyncio.sleep(0.05)

    await connected_all()
    conn.send({"ready": len(connected), "connect_s": time.perf_counter() - t0})
    go = await loop.run_in_executor(None, conn.recv)
    times.update(go)
    start.set()

    async def report_progress() -> None:
        while True:
            counter.value = progress[0]
            await asyncio.sleep(0.25)

    reporter = asyncio.create_task(report_progress())
    await asyncio.gather(*tasks, return_exceptions=True)
    reporter.cancel()
    counter.value = progress[0]
    merged = {
        "acked": [cid for s in stats.values() for cid in s.acked],
        "latencies_ms": [x for s in stats.values() for x in s.latencies_ms],
        "window_acks": sum(s.window_acks for s in stats.values()),
        "window_steps": sum(s.window_steps for s in stats.values()),
        "rejected": sum(s.rejected for s in stats.values()),
        "reject_codes": {},
        "dup_acks": sum(s.dup_acks for s in stats.values()),
        "waits": sum(s.waits for s in stats.values()),
        "errors": [e for s in stats.values() for e in s.errors],
        "notices": [s.notices for s in stats.values()],
        "unacked_at_end": sum(s.unacked_at_end for s in stats.values()),
        "sent": sum(s.sent for s in stats.values()),
        "clients": len(tokens),
        "cpu_s": time.process_time(),
    }
    for s in stats.values():
        for code, n in s.reject_codes.items():
            merged["reject_codes"][code] = merged["reject_codes"].get(code, 0) + n
    conn.send(merged)
