"""The relay's metrics, and the few calls its consumer makes (``portal.relay.consumers``).

The consumer's hot path pays for one counter and, on an ack, one histogram observation (a few
microseconds, in the multi-process mode a write to a memory-mapped file). The two gauges move as
plain integers of this process and are written to their metrics once a second by a task on the
event loop, so a frame costs no gauge write at all.

Refusals are counted by the reason code the client is sent (``client_app.protocol.codes``: the
relay's ``REFUSALS`` table and the decoder's codes); every code is a labelled series from the start,
so ``rate()`` of a code that never happened reads 0, not "no data".
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

from client_app.protocol import codes

# Every reason a chunk (or an evaluation result, or an unreadable frame) can be refused with.
REFUSAL_REASONS = (
    codes.R_MALFORMED,
    codes.R_SCHEMA,
    codes.R_SHAPE,
    codes.R_DTYPE,
    codes.R_NOT_FINITE,
    codes.R_OUT_OF_RANGE,
    codes.R_MASKED,
    codes.R_TOO_LARGE,
    codes.R_MODEL_VERSION,
    codes.R_NOT_RUNNING,
    codes.R_RATE_LIMITED,
    codes.R_NOT_REQUESTED,
    codes.R_EXPIRED,
)
OTHER_REASON = "other"  # a code outside that list: counted, without letting labels grow unbounded

# From a frame's arrival to its ack: a Redis round trip and validation are ~1 ms; 250 ms is the
# cluster's p99 target (issue 14).
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GAUGE_FLUSH_SECONDS = 1.0

CONNECTED_CLIENTS = Gauge(
    "soulsai_relay_connected_clients",
    "Client websockets open on the relay (accepted, not yet closed)",
    multiprocess_mode="livesum",
)
FRAMES_IN_FLIGHT = Gauge(
    "soulsai_relay_frames_in_flight",
    "Client frames received and not yet answered (being validated or stored)",
    multiprocess_mode="livesum",
)
CHUNKS_ACCEPTED = Counter(
    "soulsai_relay_chunks_accepted",
    "Chunks acked: stored (duplicate=false) or already stored and acked again (duplicate=true)",
    ["duplicate"],
)
CHUNKS_REFUSED = Counter(
    "soulsai_relay_chunks_refused",
    "Chunks, evaluation results and unreadable frames refused with a reject, by its reason code",
    ["reason"],
)
ACK_SECONDS = Histogram(
    "soulsai_relay_ack_seconds",
    "Seconds from a chunk frame's arrival to its ack being sent",
    buckets=ACK_BUCKETS,
)

_ACCEPTED = CHUNKS_ACCEPTED.labels(duplicate="false")
_DUPLICATE = CHUNKS_ACCEPTED.labels(duplicate="true")
_REFUSED = {reason: CHUNKS_REFUSED.labels(reason=reason) for reason in (*REFUSAL_REASONS, OTHER_REASON)}


class _Gauges:
    """This process's open connections and frames in flight, as plain integers (see the module)."""

    def __init__(self) -> None:
        self.connected = 0
        self.in_flight = 0
        self.task: asyncio.Task | None = None

    def ensure_flushing(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            self.flush()
            if not self.connected and not self.in_flight:
                return  # written as 0; the next connection starts it again
            await asyncio.sleep(GAUGE_FLUSH_SECONDS)

    def flush(self) -> None:
        CONNECTED_CLIENTS.set(self.connected)
        FRAMES_IN_FLIGHT.set(self.in_flight)


GAUGES = _Gauges()


def client_connected() -> None:
    GAUGES.connected += 1
    GAUGES.ensure_flushing()


def client_disconnected() -> None:
    GAUGES.connected -= 1


def frame_started() -> None:
    GAUGES.in_flight += 1


def frame_done() -> None:
    GAUGES.in_flight -= 1


def chunk_acked(*, duplicate: bool, seconds: float) -> None:
    """A chunk was acked ``seconds`` after its frame arrived."""
    (_DUPLICATE if duplicate else _ACCEPTED).inc()
    ACK_SECONDS.observe(seconds)


def refused(reason: str) -> None:
    """A reject was sent with ``reason``."""
    (_REFUSED.get(reason) or _REFUSED[OTHER_REASON]).inc()
