"""The process-wide "stop learning" flag, apart from the learner so that setting it imports nothing.

Celery's warm shutdown (``portal.training.tasks``) sets it from a signal handler, which may run while
``trainer.learner`` (and PyTorch) is still being imported: reading the flag off a half-imported module
failed there. Every learner in the process checks it, checkpoints, releases its lease and returns.
"""

from __future__ import annotations

import threading

SHUTDOWN = threading.Event()
