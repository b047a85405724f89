"""The learner's Prometheus metrics, one function per hook in the loop (``trainer.learner``).

Learners run as threads of one Celery worker process on a learner host (``-P threads``), so these
live in that process's registry, labelled by ``campaign_id``, and the host serves them itself
(``serve``; ``manage.py runlearner`` with ``SOULSAI_METRICS_ADDR``). The web endpoint shows each
campaign's learner too, read from its stats hash (``portal.metrics.scrape``): that one survives the
learner host, these are finer (histograms, counters at each ingest).

No Django here (``tests/trainer/test_no_django.py``). Each hook costs a few microseconds, at most once
per stream read, publish or housekeeping tick, never per sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# A publish stores a few hundred KB to MB of weights (a checkpoint adds the learner state and
# replay buffer, up to hundreds of MB) through the storage engine: milliseconds to a minute.
PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

LABELS = ["campaign_id"]

RUNNING = Gauge("soulsai_learner_running", "Learners running in this worker process")
DEVICE = Gauge(
    "soulsai_learner_device",
    "1 for each running learner, labelled with the device it trains on (cpu, cuda) and its name",
    ["campaign_id", "device", "device_name"],
)
UPDATES = Counter("soulsai_learner_updates", "Gradient updates", LABELS)
UPDATES_PER_SECOND = Gauge(
    "soulsai_learner_updates_per_second", "Gradient updates a second (last tick)", LABELS
)
SAMPLES_INGESTED = Counter(
    "soulsai_learner_samples_ingested", "Samples (steps) taken from the stream", LABELS
)
CHUNKS_INGESTED = Counter("soulsai_learner_chunks_ingested", "Chunks taken from the stream", LABELS)
STREAM_BACKLOG = Gauge(
    "soulsai_learner_stream_backlog", "Chunks in the stream not read yet (last tick)", LABELS
)
POLICY_LAG = Gauge(
    "soulsai_learner_policy_lag",
    "Mean model versions between the learner's model and the models that played the chunks it took last",
    LABELS,
)
MODEL_VERSION = Gauge("soulsai_learner_model_version", "The version the learner published last", LABELS)
PUBLISH_SECONDS = Histogram(
    "soulsai_learner_publish_seconds",
    "Seconds to publish a model (every publish, checkpoints included)",
    LABELS,
    buckets=PUBLISH_BUCKETS,
)
CHECKPOINT_SECONDS = Histogram(
    "soulsai_learner_checkpoint_seconds",
    "Seconds to publish a model that carries a checkpoint",
    LABELS,
    buckets=PUBLISH_BUCKETS,
)

_GAUGES_PER_CAMPAIGN = (UPDATES_PER_SECOND, STREAM_BACKLOG, POLICY_LAG, MODEL_VERSION)
_lock = threading.Lock()
_updates_seen: dict[str, int] = {}  # per campaign: the update count the counter has reached
_devices: dict[str, tuple[str, str]] = {}


def learner_started(campaign_id: int, *, device: str, device_name: str) -> None:
    """A learner runs (hook: before its loop; its first tick sets where the updates counter starts)."""
    key = str(campaign_id)
    with _lock:
        _updates_seen.pop(key, None)
        _devices[key] = (device, device_name)
    DEVICE.labels(key, device, device_name).set(1)
    RUNNING.inc()


def learner_stopped(campaign_id: int) -> None:
    """The learner returned (hook: in a ``finally``): its gauges leave this host's endpoint."""
    key = str(campaign_id)
    with _lock:
        _updates_seen.pop(key, None)
        device = _devices.pop(key, None)
    if device is None:
        return
    RUNNING.dec()
    DEVICE.remove(key, *device)
    for gauge in _GAUGES_PER_CAMPAIGN:
        try:
            gauge.remove(key)
        except KeyError:
            pass  # never set


def ingested(campaign_id: int, *, chunks: int, samples: int, policy_lag: float | None) -> None:
    """Chunks went into the agent (hook: end of ``ingest``); ``policy_lag`` is their mean."""
    key = str(campaign_id)
    CHUNKS_INGESTED.labels(key).inc(chunks)
    SAMPLES_INGESTED.labels(key).inc(samples)
    if policy_lag is not None:
        POLICY_LAG.labels(key).set(policy_lag)


def ticked(
    campaign_id: int, *, updates: int, updates_per_s: float, backlog: int | None, version: int
) -> None:
    """The housekeeping tick (hook: ``write_stats``, once a second)."""
    key = str(campaign_id)
    with _lock:
        seen = _updates_seen.get(key)
        _updates_seen[key] = updates
    # The first tick (after the resume) is the baseline, not new updates; a recovery goes back to a
    # checkpoint's count: the counter only moves forward.
    counter = UPDATES.labels(key)
    if seen is not None and updates > seen:
        counter.inc(updates - seen)
    UPDATES_PER_SECOND.labels(key).set(updates_per_s)
    MODEL_VERSION.labels(key).set(version)
    if backlog is not None:
        STREAM_BACKLOG.labels(key).set(backlog)


@contextmanager
def publishing(campaign_id: int, *, checkpoint: bool) -> Iterator[None]:
    """Times a publish (hook: around ``store.model_publish``); a failed publish is not observed."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    PUBLISH_SECONDS.labels(str(campaign_id)).observe(seconds)
    if checkpoint:
        CHECKPOINT_SECONDS.labels(str(campaign_id)).observe(seconds)


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port); ValueError says what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:9108)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def serve(address: str) -> tuple[str, int]:
    """Serve this process's metrics on ``host:port`` from a daemon thread; returns where it listens.

    Private by address only (no allow list): bind it to an interface that only Prometheus reaches.
    """
    host, port = parse_address(address)
    server, _thread = start_http_server(port, addr=host)
    return host, server.server_address[1]
