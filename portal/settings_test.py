"""Test settings: fast hashing, a throw-away var/ folder, and a private embedded Redis port.

REDIS_URL and DATABASE_URL, when set, point the suite at real servers (as .ci/run's second pass does);
SOULSAI_TEST_STORAGE=sftp stores files on a throw-away SFTP server (docs/deployment.md, "Storage").
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
if os.environ.get("SOULSAI_TEST_STORAGE") == "sftp" and not os.environ.get("SOULSAI_SFTP_HOST"):
    # The whole suite with model files and the client wheel on a throw-away sshd (harness/sftp.py);
    # the processes the tests start inherit SOULSAI_SFTP_* and use the same server.
    import atexit
    from pathlib import Path

    from harness.sftp import start_sftp_server

    _sftp = start_sftp_server(Path(tempfile.mkdtemp(prefix="soulsai-sftp-")))
    atexit.register(_sftp.stop)
    os.environ.update(_sftp.env())

from portal.settings import *  # noqa: E402,F403
from portal.settings import DATABASES, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: end-to-end tests share the test database with the processes they start.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
SOULSAI_LEASE_SECONDS = 6.0
