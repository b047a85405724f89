"""Prometheus metrics of the web/relay role (docs/deployment.md, "Metrics").

- ``portal.metrics.relay``: what the relay consumer counts on its hot path (connected clients, chunks
  accepted and refused by reason, ack latency, frames in flight): one definition of each metric.
- ``portal.metrics.scrape``: what is read at scrape time from the database, Redis and the Celery broker
  (campaigns, their learners as the learners' stats hashes tell, queue lengths).
- ``portal.metrics.endpoint``: ``/metrics`` on every ASGI process, refused to any peer outside
  ``SOULSAI_METRICS_ALLOW``; with ``PROMETHEUS_MULTIPROC_DIR`` set it sums every process of the host.
- ``portal.metrics.learner_host``: the learner host's own endpoint (``SOULSAI_METRICS_ADDR``), started
  inside the Celery worker that ``manage.py runlearner`` becomes; the learner's metrics are
  ``trainer.metrics``.
"""
