"""A learner host's metrics endpoint, inside the Celery worker that ``manage.py runlearner`` becomes.

runlearner checks ``SOULSAI_METRICS_ADDR`` and adds this module to the worker's imports
(``--include``); when the worker starts, its learners' metrics (``trainer.metrics``) are served on that
address from a thread of the worker process, where the learner threads count them.
"""

from __future__ import annotations

import logging

from celery.signals import worker_init
from django.conf import settings

from trainer.metrics import serve

log = logging.getLogger(__name__)


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    if not settings.SOULSAI_METRICS_ADDR:
        return
    try:
        host, port = serve(settings.SOULSAI_METRICS_ADDR)
    except (OSError, ValueError) as exc:
        # runlearner checked the address before it started the worker: this is a race for the port.
        log.error("learner host: cannot serve metrics on %s: %s", settings.SOULSAI_METRICS_ADDR, exc)
        return
    log.info("learner host: metrics on http://%s:%d/metrics", host, port)
