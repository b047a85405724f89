"""The portal's side of the learner: the store it trains against, and the Celery tasks that run it.

``trainer`` imports nothing of the portal; this package implements what the learner asks for
(``trainer.campaign.LearnerStore``) with the ORM, passes it the portal's Redis and settings, and
runs it on the ``learner`` queue. No models: it needs no entry in INSTALLED_APPS.
"""
