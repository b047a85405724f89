"""The Celery app: the learner runs on the ``learner`` queue, beat tasks on the default one."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("soulsai")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each package's tasks module: portal.training.tasks holds the learner's (named trainer.tasks.*).
app.autodiscover_tasks(["portal.training", "portal.campaigns", "portal.livestats", "portal.leaderboards"])
