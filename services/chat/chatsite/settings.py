"""Settings for every role of the chat service, read from the environment through chatsite.env.

DJANGO_ENV=development (the default) embeds SQLite and the in-memory channel layer so the chat runs
with nothing but Python; DJANGO_ENV=production requires its secrets and services and stops at boot,
naming the variable, when one is missing.
"""

from pathlib import Path

import dj_database_url

from chatsite import redis_shards
from chatsite.env import REQUIRED, SettingError, env

BASE_DIR = Path(__file__).resolve().parent.parent

env.check_renamed()
DJANGO_ENV = env.choice("DJANGO_ENV", ["development", "production"], default="development")
PRODUCTION = DJANGO_ENV == "production"


def dev_default(value):
    """The value in development; no default (required) in production."""
    return REQUIRED if PRODUCTION else value


SECRET_KEY = env.str("DJANGO_SECRET_KEY", dev_default("development-only-insecure-key-" + "x" * 32))
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", [])
DEBUG = env.bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", dev_default(["localhost", "127.0.0.1", "[::1]"]))
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",  # its runserver serves ASGI (HTTP + WebSocket) in development
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "chat.middleware.ProbeMiddleware",  # before any Host check: probes come by IP
    "django.middleware.security.SecurityMiddleware",
    "chat.middleware.SecurityHeadersMiddleware",
    "chat.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
WSGI_APPLICATION = "chatsite.wsgi.application"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# Database: one URL. Development: a SQLite file next to manage.py.
DATABASES = {
    "default": dj_database_url.parse(
        env.str("DATABASE_URL", dev_default(f"sqlite:///{BASE_DIR / 'db.sqlite3'}")),
        # Production keeps connections for a minute: a new one per request or handshake cost 5x
        # the room page's throughput (docs/PERFORMANCE.md); health checks drop dead ones.
        conn_max_age=env.int("DATABASE_CONN_MAX_AGE", 60 if PRODUCTION else 0, minimum=0),
        # A SELECT 1 round trip before each request's first query; off, a connection broken by a
        # Postgres restart fails one request per worker thread (503) and is then replaced.
        conn_health_checks=env.bool("DATABASE_CONN_HEALTH_CHECKS", True),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Fail fast when Postgres is down instead of hanging a worker for the OS default (minutes).
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
        "DATABASE_CONNECT_TIMEOUT", 3, minimum=1
    )
else:
    # IMMEDIATE: writers queue on SQLite's lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channel layer: in-memory when no Redis is configured (development, single process only).
# Redis: one (REDIS_URL), shards (REDIS_URLS) or Sentinel groups (REDIS_SENTINELS +
# REDIS_MASTER_NAME): chatsite/redis_shards.py, docs/operations.md "Redis high availability".
REDIS_SHARDS = redis_shards.from_env(env, PRODUCTION)
CHANNEL_LAYER = env.choice("CHANNEL_LAYER", ["pubsub", "core"], default="pubsub")
# Core layer only: how long a group membership lives in Redis. It must outlast the longest socket
# (Daphne's --websocket_timeout), or long-lived clients silently stop receiving.
CHANNEL_GROUP_EXPIRY = env.int("CHANNEL_GROUP_EXPIRY", 86400, minimum=60)
CHANNEL_CAPACITY = env.int("CHANNEL_CAPACITY", 1000, minimum=10)
# Seconds a Redis call may block before the sender is told its broadcast is delayed (pub/sub).
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", 1.0, minimum=0.1)
# redis-py's pool refuses a 101st concurrent call ("Too many connections"); a connect storm of
# hundreds of sockets joins its groups at once.
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", 1000, minimum=10)
if REDIS_SHARDS is None:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layers.ChatPubSubChannelLayer",  # pub/sub, lean per consumer
            "CONFIG": {
                # Without a timeout a paused Redis holds each publish for redis-py's default
                # (none on reads, 5 s seen): one error per 5 s instead of one per frame (F5).
                "hosts": [
                    shard.channels_host(
                        socket_timeout=REDIS_SOCKET_TIMEOUT,
                        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
                        max_connections=REDIS_MAX_CONNECTIONS,
                    )
                    for shard in REDIS_SHARDS
                ],
                "prefix": "chat",
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # No socket timeout: the core layer's receive blocks in Redis (BZPOPMIN) by design.
                "hosts": [
                    shard.channels_host(max_connections=REDIS_MAX_CONNECTIONS)
                    for shard in REDIS_SHARDS
                ],
                "prefix": "chat",
                "capacity": CHANNEL_CAPACITY,
                "group_expiry": CHANNEL_GROUP_EXPIRY,
            },
        }
    }

# The chat itself: limits and history (docs/protocol.md describes what clients see).
CHAT = {
    "MAX_ROOM_CHARS": env.int("CHAT_MAX_ROOM_CHARS", 200, minimum=1),
    "MAX_MESSAGE_CHARS": env.int("CHAT_MAX_MESSAGE_CHARS", 2000, minimum=1),
    "MAX_FRAME_BYTES": env.int("CHAT_MAX_FRAME_BYTES", 16384, minimum=64),
    "RATE_PER_SECOND": env.float("CHAT_RATE_PER_SECOND", 10.0, minimum=0.01),
    "RATE_BURST": env.int("CHAT_RATE_BURST", 30, minimum=1),
    "HISTORY_ON_JOIN": env.int("CHAT_HISTORY_ON_JOIN", 50, minimum=0),
    # Messages per catch-up write: 100 x ~8 KB (2000 four-byte characters) stays under
    # WS_MAX_PENDING_BYTES, so a client resuming a long backlog is not taken for a slow reader.
    "RESUME_BATCH": env.int("CHAT_RESUME_BATCH", 100, minimum=1),
    "RETENTION_DAYS": env.int("CHAT_RETENTION_DAYS", 0, minimum=0),
    "DRAIN_SECONDS": env.float("WS_DRAIN_SECONDS", 10.0, minimum=0),
}

# The ws role's server (manage.py runws). Daphne pings idle sockets every PING_INTERVAL seconds:
# shorter than nginx's proxy_read_timeout (60 s), so a quiet but healthy socket is never cut.
# A socket lives at most WEBSOCKET_TIMEOUT seconds, never longer than a core-layer group
# membership (CHANNEL_GROUP_EXPIRY), or it would stop receiving without noticing.
WS_SERVER = {
    "PING_INTERVAL": env.int("DAPHNE_PING_INTERVAL", 20, minimum=1),
    "PING_TIMEOUT": env.int("DAPHNE_PING_TIMEOUT", 30, minimum=1),
    "WEBSOCKET_TIMEOUT": env.int("DAPHNE_WEBSOCKET_TIMEOUT", CHANNEL_GROUP_EXPIRY, minimum=60),
    "APPLICATION_CLOSE_TIMEOUT": env.int("DAPHNE_APPLICATION_CLOSE_TIMEOUT", 10, minimum=1),
    # Seconds an opening handshake may wait for the consumer (group join + a database read).
    "HANDSHAKE_TIMEOUT": env.int("DAPHNE_HANDSHAKE_TIMEOUT", 20, minimum=1),
    # Pending connections the kernel queues for Daphne (capped by net.core.somaxconn).
    "LISTEN_BACKLOG": env.int("DAPHNE_LISTEN_BACKLOG", 1024, minimum=1),
    # Hard cap enforced by Daphne itself (close 1009) before anything is buffered or parsed;
    # frames between CHAT_MAX_FRAME_BYTES and this get a friendlier error frame from the app.
    "MAX_MESSAGE_BYTES": env.int("WS_MAX_MESSAGE_BYTES", 65536, minimum=1024),
    # Output buffered for a client that does not read; beyond it the client is dropped and
    # resumes later from the database. Bounds a worker's memory per socket.
    "MAX_PENDING_BYTES": env.int("WS_MAX_PENDING_BYTES", 1048576, minimum=65536),
    # Seconds a client may keep more than half of that unsent (a catch-up waits for it there)
    # before it is dropped too: a reader slower than ~50 KB/s resumes later instead.
    "SLOW_READER_SECONDS": env.float("WS_SLOW_READER_SECONDS", 10.0, minimum=1),
}
if WS_SERVER["WEBSOCKET_TIMEOUT"] > CHANNEL_GROUP_EXPIRY:
    raise SettingError(
        f"DAPHNE_WEBSOCKET_TIMEOUT ({WS_SERVER['WEBSOCKET_TIMEOUT']}) must not exceed "
        f"CHANNEL_GROUP_EXPIRY ({CHANNEL_GROUP_EXPIRY})"
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", str(BASE_DIR / "static"))
STORAGES = {
    "staticfiles": {
        # Hashed names: nginx can cache /static/ for a year and a deploy still busts the cache.
        "BACKEND": "chat.storage.ManifestStaticFilesStorage"  # Django's, url() remembered
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Security. nginx terminates client connections and sets X-Forwarded-Proto; only it can reach us.
CONTENT_SECURITY_POLICY = env.str(
    "DJANGO_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", False)

LOG_FORMAT = env.choice("LOG_FORMAT", ["json", "text"], default="json" if PRODUCTION else "text")
LOG_LEVEL = env.choice(
    "LOG_LEVEL", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], default="INFO"
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "chatsite.logs.JsonFormatter"},
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s%(fields)s",
            "()": "chatsite.logs.TextFormatter",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},  # Daphne's per-request access log
        "daphne": {"level": "WARNING"},
    },
}

# uWSGI/gunicorn run several processes; prometheus_client aggregates them through this directory.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", None)
# Joining the browsers' HSTS preload list is hard to undo, so it is the operator's explicit choice
# (DJANGO_HSTS_PRELOAD=true); until then `check --deploy` need not warn about it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
