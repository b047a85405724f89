"""Test settings: fast hashing, a throw-away var/ folder, and a private embedded Redis port.

REDIS_URL and DATABASE_URL, when set, point the suite at real servers (as .ci/run's second pass does).
Processes the tests start (ASGI server, Celery worker, clients) inherit the environment set here.
"""

import os
import tempfile

from harness.processes import free_port

if not os.environ.get("SOULSAI_VAR_DIR"):
    os.environ["SOULSAI_VAR_DIR"] = tempfile.mkdtemp(prefix="soulsai-test-")
if not os.environ.get("REDIS_URL") and not os.environ.get("EMBEDDED_REDIS_PORT"):
    os.environ["EMBEDDED_REDIS_PORT"] = str(free_port())
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")

from portal.settings import *  # noqa: E402,F403
from portal.settings import DATABASES, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: end-to-end tests share the test database with the processes they start.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
SOULSAI_LEASE_SECONDS = 6.0
