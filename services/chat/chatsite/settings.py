"""Settings for every role of the chat service, read from the environment through chatsite.env.

Each variable's type, bounds and defaults are declared once, in chatsite/config.py (docs:
docs/configuration.md); `setting(name)` reads it. A variable that is not declared there cannot
be read (and tests/lint/test_config.py finds any read that bypasses `setting`).

DJANGO_ENV=development (the default) embeds SQLite and the in-memory channel layer so the chat runs
with nothing but Python; DJANGO_ENV=production requires its secrets and services and stops at boot,
naming the variable, when one is missing.
"""

from pathlib import Path

import dj_database_url

from chat import runtime
from chatsite import redis_shards
from chatsite.env import SettingError, env

BASE_DIR = Path(__file__).resolve().parent.parent

env.check_renamed()
DJANGO_ENV = env.setting("DJANGO_ENV")
PRODUCTION = DJANGO_ENV == "production"


def setting(name):
    """The variable `name` as chatsite/config.py declares it: type, bounds, this mode's default."""
    return env.setting(name, PRODUCTION)


SECRET_KEY = setting("DJANGO_SECRET_KEY")
SECRET_KEY_FALLBACKS = setting("DJANGO_SECRET_KEY_FALLBACKS")
DEBUG = setting("DJANGO_DEBUG")
ALLOWED_HOSTS = setting("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = setting("DJANGO_CSRF_TRUSTED_ORIGINS")
# Pages that may open the WebSocket (chat.origins: scheme, host and port).
CHAT_ALLOWED_ORIGINS = setting("CHAT_ALLOWED_ORIGINS")

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
        setting("DATABASE_URL"),
        # Production keeps connections for a minute: a new one per request or handshake cost 5x
        # the room page's throughput (docs/PERFORMANCE.md); health checks drop dead ones.
        conn_max_age=setting("DATABASE_CONN_MAX_AGE"),
        # A SELECT 1 round trip before each request's first query; off, a connection broken by a
        # Postgres restart fails one request per worker thread (503) and is then replaced.
        conn_health_checks=setting("DATABASE_CONN_HEALTH_CHECKS"),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Fail fast when Postgres is down instead of hanging a worker for the OS default (minutes).
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = setting(
        "DATABASE_CONNECT_TIMEOUT"
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
CHANNEL_LAYER = setting("CHANNEL_LAYER")
# Core layer only: how long a group membership lives in Redis. It must outlast the longest socket
# (Daphne's --websocket_timeout), or long-lived clients silently stop receiving.
CHANNEL_GROUP_EXPIRY = setting("CHANNEL_GROUP_EXPIRY")
CHANNEL_CAPACITY = setting("CHANNEL_CAPACITY")
# Seconds a Redis call may block before the sender is told its broadcast is delayed (pub/sub).
REDIS_SOCKET_TIMEOUT = setting("REDIS_SOCKET_TIMEOUT")
# redis-py's pool refuses a 101st concurrent call ("Too many connections"); a connect storm of
# hundreds of sockets joins its groups at once.
REDIS_MAX_CONNECTIONS = setting("REDIS_MAX_CONNECTIONS")
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
    "MAX_ROOM_CHARS": setting("CHAT_MAX_ROOM_CHARS"),
    "MAX_MESSAGE_CHARS": setting("CHAT_MAX_MESSAGE_CHARS"),
    "MAX_FRAME_BYTES": setting("CHAT_MAX_FRAME_BYTES"),
    "RATE_PER_SECOND": setting("CHAT_RATE_PER_SECOND"),
    "RATE_BURST": setting("CHAT_RATE_BURST"),
    # All sockets of one client address together, per ws process (chat.ratelimit.ADDRESSES).
    "ADDRESS_RATE_PER_SECOND": setting("CHAT_ADDRESS_RATE_PER_SECOND"),
    "ADDRESS_RATE_BURST": setting("CHAT_ADDRESS_RATE_BURST"),
    "HISTORY_ON_JOIN": setting("CHAT_HISTORY_ON_JOIN"),
    # Messages per catch-up write: 100 x ~8 KB (2000 four-byte characters) stays under
    # WS_MAX_PENDING_BYTES, so a client resuming a long backlog is not taken for a slow reader.
    "RESUME_BATCH": setting("CHAT_RESUME_BATCH"),
    "RETENTION_DAYS": setting("CHAT_RETENTION_DAYS"),
    "DRAIN_SECONDS": setting("WS_DRAIN_SECONDS"),
}

# The ws role's server (manage.py runws). Daphne pings idle sockets every PING_INTERVAL seconds:
# shorter than nginx's proxy_read_timeout (60 s), so a quiet but healthy socket is never cut.
# A socket lives at most WEBSOCKET_TIMEOUT seconds, never longer than a core-layer group
# membership (CHANNEL_GROUP_EXPIRY), or it would stop receiving without noticing.
WS_SERVER = {
    "PING_INTERVAL": setting("DAPHNE_PING_INTERVAL"),
    "PING_TIMEOUT": setting("DAPHNE_PING_TIMEOUT"),
    "WEBSOCKET_TIMEOUT": setting("DAPHNE_WEBSOCKET_TIMEOUT"),  # default: CHANNEL_GROUP_EXPIRY
    "APPLICATION_CLOSE_TIMEOUT": setting("DAPHNE_APPLICATION_CLOSE_TIMEOUT"),
    # Seconds an opening handshake may wait for the consumer (group join + a database read).
    "HANDSHAKE_TIMEOUT": setting("DAPHNE_HANDSHAKE_TIMEOUT"),
    # Pending connections the kernel queues for Daphne (capped by net.core.somaxconn).
    "LISTEN_BACKLOG": setting("DAPHNE_LISTEN_BACKLOG"),
    # Hard cap enforced by Daphne itself (close 1009) before anything is buffered or parsed;
    # frames between CHAT_MAX_FRAME_BYTES and this get a friendlier error frame from the app.
    "MAX_MESSAGE_BYTES": setting("WS_MAX_MESSAGE_BYTES"),
    # Output buffered for a client that does not read; beyond it the client is dropped and
    # resumes later from the database. Bounds a worker's memory per socket.
    "MAX_PENDING_BYTES": setting("WS_MAX_PENDING_BYTES"),
    # Seconds a client may keep more than half of that unsent (a catch-up waits for it there)
    # before it is dropped too: a reader slower than ~50 KB/s resumes later instead.
    "SLOW_READER_SECONDS": setting("WS_SLOW_READER_SECONDS"),
}
# The ws role's overrides of upstream internals (chat/runtime/): all, none, or a list of names.
WS_RUNTIME_OVERRIDES = setting("WS_RUNTIME_OVERRIDES")
try:
    runtime.set_enabled(runtime.parse(WS_RUNTIME_OVERRIDES))
except ValueError as exc:
    raise SettingError(str(exc)) from None
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
STATIC_ROOT = setting("DJANGO_STATIC_ROOT")
STORAGES = {
    "staticfiles": {
        # Hashed names: nginx can cache /static/ for a year and a deploy still busts the cache.
        "BACKEND": "chat.storage.ManifestStaticFilesStorage"  # Django's, url() remembered
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Security. nginx terminates client connections and sets X-Forwarded-Proto; only it can reach us.
CONTENT_SECURITY_POLICY = setting("DJANGO_CSP")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = setting("DJANGO_SECURE_SSL_REDIRECT")
SESSION_COOKIE_SECURE = setting("DJANGO_SECURE_COOKIES")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = setting("DJANGO_HSTS_SECONDS")
SECURE_HSTS_INCLUDE_SUBDOMAINS = setting("DJANGO_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = setting("DJANGO_HSTS_PRELOAD")

LOG_FORMAT = setting("LOG_FORMAT")
LOG_LEVEL = setting("LOG_LEVEL")
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
PROMETHEUS_MULTIPROC_DIR = setting("PROMETHEUS_MULTIPROC_DIR")
# Joining the browsers' HSTS preload list is hard to undo, so it is the operator's explicit choice
# (DJANGO_HSTS_PRELOAD=true); until then `check --deploy` need not warn about it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
