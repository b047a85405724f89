"""The SoulsAI portal: Django project, relay and the Celery app that runs the trainer."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
