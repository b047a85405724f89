"""What the web endpoint reads at scrape time: campaigns, their learners, and the Celery queues.

Nothing here is counted on a hot path. Each scrape costs one database query (running campaigns and
the figures ``sync_stats`` rolls up into their rows every 2 s), one Redis round trip (per campaign:
the stream's length and the learner group's pending count, the lease, the learner's stats hash ``{c<id>}:learner`` that
``trainer.learner`` writes every second), and one round trip to the Celery broker (queue lengths).
So a learner's figures are visible on the web hosts even though it runs on another host, and a
campaign whose learner is gone shows ``soulsai_campaign_learner_up 0`` (a dead learner serves no
metrics of its own).

A source that does not answer does not fail the scrape: its figures are left out and
``soulsai_metrics_source_up{source=...}`` says 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import lru_cache

import redis
from django.conf import settings
from django.db import DatabaseError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from portal.core.processes import LEARNER_QUEUES, PERIODIC_QUEUES
from portal.training.services import HEARTBEAT_STALE_SECONDS
from trainer.keys import CampaignKeys

SOCKET_TIMEOUT_S = 5.0  # a scrape must end well within Prometheus's scrape timeout (10 s by default)
# kombu's Redis transport keeps each queue as one list per priority step ("<queue>\x06\x16<step>").
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
CELERY_QUEUES = (*LEARNER_QUEUES, *PERIODIC_QUEUES)  # "learner", "celery" (the default), "periodic"

CAMPAIGN_LABELS = ["campaign", "campaign_id"]
LEARNER_FIELDS = ("heartbeat", "updates_per_s", "samples_ingested", "policy_lag")


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)


def _number(value: bytes | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def queue_keys(queue: str, prefix: str) -> list[str]:
    """The broker's lists that hold ``queue``'s waiting tasks, one per priority step."""
    return [
        prefix + (f"{queue}{KOMBU_PRIORITY_SEP}{step}" if step else queue) for step in KOMBU_PRIORITY_STEPS
    ]


class PlatformCollector(Collector):
    """Campaigns, learners and Celery queues, read when Prometheus scrapes (see the module)."""

    def describe(self) -> list[Metric]:
        return []  # registered without a collect() at registration time (that would query the database)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "soulsai_metrics_source_up",
            "Whether a source of the scrape-time figures answered",
            labels=["source"],
        )
        campaigns = self._campaigns()
        up.add_metric(["database"], 0 if campaigns is None else 1)
        if campaigns is not None:
            yield from self._campaign_metrics(campaigns)
            redis_ok = yield from self._learner_metrics(campaigns)
            up.add_metric(["redis"], 1 if redis_ok else 0)
        broker_ok = yield from self._queue_metrics()
        if broker_ok is not None:
            up.add_metric(["broker"], 1 if broker_ok else 0)
        yield up

    # -- campaigns, from their rows ------------------------------------------------------------------

    @staticmethod
    def _campaigns() -> list[dict] | None:
        from portal.campaigns.models import Campaign

        try:
            return list(
                Campaign.objects.running()
                .order_by("id")
                .values(
                    "id",
                    "slug",
                    "model_version",
                    "samples_total",
                    "episodes_total",
                    "updates_total",
                    "clients_active",
                    "mean_return_recent",
                    "win_rate_recent",
                    "eval_version",
                    "eval_return",
                    "eval_win_rate",
                )
            )
        except DatabaseError:
            return None

    @staticmethod
    def _campaign_metrics(campaigns: list[dict]) -> Iterator[Metric]:
        gauges = {
            "model_version": "The current model version",
            "clients_active": "Machines that sent experience recently",
            "mean_return_recent": "Mean return of the latest episodes clients played",
            "win_rate_recent": "Boss fights: share of the latest fights won",
            "eval_version": "The model version of the latest evaluation summary",
            "eval_return": "Mean return of the greedy evaluation episodes of eval_version",
            "eval_win_rate": "Boss fights: share of eval_version's evaluation episodes won",
        }
        counters = {
            "samples": ("samples_total", "Samples (steps) stored for the campaign"),
            "episodes": ("episodes_total", "Episodes stored for the campaign"),
            "updates": ("updates_total", "Gradient updates of the published models"),
        }
        running = GaugeMetricFamily("soulsai_campaigns_running", "Campaigns whose status is running")
        running.add_metric([], len(campaigns))
        yield running
        for field, doc in gauges.items():
            family = GaugeMetricFamily(f"soulsai_campaign_{field}", doc, labels=CAMPAIGN_LABELS)
            for row in campaigns:
                if row[field] is not None:  # no evaluation yet, not a boss fight: no sample, not a 0
                    family.add_metric([row["slug"], str(row["id"])], row[field])
            yield family
        for name, (field, doc) in counters.items():
            family = CounterMetricFamily(f"soulsai_campaign_{name}", doc, labels=CAMPAIGN_LABELS)
            for row in campaigns:
                family.add_metric([row["slug"], str(row["id"])], row[field])
            yield family

    # -- learners and streams, from Redis -------------------------------------------------------------

    @staticmethod
    def _learner_metrics(campaigns: list[dict]):
        if not campaigns:
            return True
        pipe = _client(settings.REDIS_URL).pipeline(transaction=False)
        for row in campaigns:
            keys = CampaignKeys(row["id"])
            pipe.xlen(keys.stream)
            pipe.xpending(keys.stream, keys.group)  # an error until the learner made its group: none held
            pipe.exists(keys.lease)
            pipe.hmget(keys.learner, *LEARNER_FIELDS)
        try:
            answers = pipe.execute(raise_on_error=False)
        except redis.RedisError:
            return False
        if any(isinstance(answer, redis.ConnectionError | redis.TimeoutError) for answer in answers):
            return False
        now = time.time()
        families = {
            "backlog": GaugeMetricFamily(
                "soulsai_campaign_stream_backlog",
                "Chunks in the campaign's stream the learner has not read yet",
                labels=CAMPAIGN_LABELS,
            ),
            "held": GaugeMetricFamily(
                "soulsai_campaign_stream_held",
                "Chunks the learner has read and holds in the stream until a checkpoint covers them",
                labels=CAMPAIGN_LABELS,
            ),
            "up": GaugeMetricFamily(
                "soulsai_campaign_learner_up",
                f"1 when a learner holds the campaign's lease or beat within {HEARTBEAT_STALE_SECONDS:g} s",
                labels=CAMPAIGN_LABELS,
            ),
            "age": GaugeMetricFamily(
                "soulsai_campaign_learner_heartbeat_age_seconds",
                "Seconds since the learner's last heartbeat",
                labels=CAMPAIGN_LABELS,
            ),
            "rate": GaugeMetricFamily(
                "soulsai_campaign_learner_updates_per_second",
                "The learner's gradient updates a second",
                labels=CAMPAIGN_LABELS,
            ),
            "samples": CounterMetricFamily(
                "soulsai_campaign_learner_samples_ingested",
                "Samples the learner took from the stream",
                labels=CAMPAIGN_LABELS,
            ),
            "lag": GaugeMetricFamily(
                "soulsai_campaign_learner_policy_lag",
                "Model versions between the learner's model and the models that played the chunks it took last",
                labels=CAMPAIGN_LABELS,
            ),
        }
        for i, row in enumerate(campaigns):
            labels = [row["slug"], str(row["id"])]
            stored, pending, lease, fields = answers[4 * i : 4 * i + 4]
            if isinstance(fields, Exception):
                continue  # its stats hash is a key of another type: its learner figures are left out
            heartbeat, rate, samples, lag = fields
            held = pending.get("pending", 0) if isinstance(pending, dict) else 0
            heartbeat = _number(heartbeat)
            age = max(0.0, now - heartbeat) if heartbeat is not None else None
            families["backlog"].add_metric(labels, max(0, stored - held) if isinstance(stored, int) else 0)
            families["held"].add_metric(labels, held)
            families["up"].add_metric(
                labels, 1 if lease or (age is not None and age < HEARTBEAT_STALE_SECONDS) else 0
            )
            for name, value in (
                ("age", age),
                ("rate", _number(rate)),
                ("samples", _number(samples)),
                ("lag", _number(lag)),
            ):
                if value is not None:
                    families[name].add_metric(labels, value)
        yield from families.values()
        return True

    # -- Celery queues, from the broker ---------------------------------------------------------------

    @staticmethod
    def _queue_metrics():
        """Queue lengths; None (and nothing) when the broker is not Redis."""
        url = settings.CELERY_BROKER_URL
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return None
        prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
        pipe = _client(url).pipeline(transaction=False)
        for queue in CELERY_QUEUES:
            for key in queue_keys(queue, prefix):
                pipe.llen(key)
        try:
            lengths = pipe.execute()
        except redis.RedisError:
            return False
        family = GaugeMetricFamily(
            "soulsai_celery_queue_length",
            "Tasks waiting in a Celery queue (not yet taken by a worker)",
            labels=["queue"],
        )
        steps = len(KOMBU_PRIORITY_STEPS)
        for i, queue in enumerate(CELERY_QUEUES):
            family.add_metric([queue], sum(lengths[i * steps : (i + 1) * steps]))
        yield family
        return True
