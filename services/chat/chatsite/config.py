"""Every variable of the stack, declared once: name, type, defaults, bounds, readers and a doc.

The service reads its settings through these declarations (chatsite.env.Env.setting), so a
default written here is the default it uses. `scripts/gen-config` writes .env.example,
docs/configuration.md and k8s/base/config/*.env from them (chatsite/configgen.py), and the lint
tier (tests/lint/test_config.py) fails when compose's environments, the start scripts or the
service's source read or pass a variable that is not declared here, or at another default.

Defaults: `default` is what the reader uses when the variable is unset (for the service: with
DJANGO_ENV=development); `production` when DJANGO_ENV=production, if different; `stack` is the
value .env.example, compose.yaml and k8s/base carry, if different again (the stack starts in
local mode: plain HTTP on loopback). REQUIRED: no default, the process stops naming it.
Pure data, no Django: the generator imports it without the service's dependencies.
"""

from dataclasses import dataclass, field


class _Marker:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


REQUIRED = _Marker("REQUIRED")  # no default: a missing value stops the process, naming it
SAME = _Marker("SAME")  # as the default before it (production: as default; stack: as production)
BUILT = _Marker("BUILT")  # compose and Kubernetes build the value (a URL from the passwords)


@dataclass(frozen=True)
class Ref:
    """A default that is another setting's value."""

    name: str


# Who reads a variable. The lint tier checks each claim against the source.
SERVICE = "settings"  # chatsite/settings.py and redis_shards.py: the web, ws and migrate roles
WEB = "start-web"  # services/chat/bin/start-web
WS = "start-ws"  # services/chat/bin/start-ws
MIGRATE = "start-migrate"  # services/chat/bin/start-migrate
NGINX = "start-nginx"  # nginx/start-nginx
COMPOSE = "compose"  # the compose files themselves (images, ports, replicas, URLs)
UP = "scripts/up"  # scripts/up's checks and switches
K8S = "k8s"  # Kubernetes manifests only
READERS = (SERVICE, WEB, WS, MIGRATE, NGINX, COMPOSE, UP, K8S)
KINDS = ("str", "bool", "int", "float", "list", "choice")

# compose.yaml services whose `environment:` carries a variable to a process.
DJANGO = "django"  # the x-django block: web, ws and migrate
NGINX_SERVICE = "nginx"


@dataclass(frozen=True)
class Setting:
    """One variable. `set_by` None: .env sets it (compose passes it on); else who sets it."""

    name: str
    kind: str
    default: object
    doc: str
    read_by: tuple
    production: object = SAME
    stack: object = SAME
    minimum: float | None = None
    choices: tuple = ()
    secret: bool = False  # in the Kubernetes Secret, not a ConfigMap
    set_by: str | None = None
    note: str = ""  # the comment above it in .env.example (it may speak for the lines after it)
    commented: bool = False  # in .env.example as `#NAME=value`: a switch that scripts/up writes
    compose: tuple | None = None  # compose.yaml environments that carry it; None: from read_by
    defaults: tuple = ()  # ((reader, default), ...) where a reader's default differs
    section: str = ""  # filled in by Section

    def __post_init__(self):
        if self.compose is None:
            carried = ()
            if self.set_by is None and {SERVICE, WEB, WS, MIGRATE} & set(self.read_by):
                carried += (DJANGO,)
            if self.set_by is None and NGINX in self.read_by:
                carried += (NGINX_SERVICE,)
            object.__setattr__(self, "compose", carried)

    @property
    def production_default(self):
        return self.default if self.production is SAME else self.production

    @property
    def stack_value(self):
        return self.production_default if self.stack is SAME else self.stack

    def default_in(self, production):
        """The service's default in this mode."""
        return self.production_default if production else self.default

    def default_for(self, reader):
        """The default `reader` gives it (a start script's own, where it has one)."""
        return dict(self.defaults).get(reader, self.default)

    @property
    def placeholder(self):
        """A secret that must be set: .env.example holds `!!!SET NAME!!!`, scripts/up fills it."""
        return self.secret and self.production_default is REQUIRED


@dataclass(frozen=True)
class Section:
    """A group of variables: a `# Section` block of .env.example, a heading of the docs."""

    title: str
    text: str  # the block's opening comment in .env.example (its first words name it)
    settings: tuple = field(default_factory=tuple)

    def __post_init__(self):
        for setting in self.settings:
            object.__setattr__(setting, "section", self.title)


def text(value):
    """A value as an environment variable spells it (None and empty lists: empty)."""
    if value is None or value is REQUIRED or value is BUILT or isinstance(value, Ref):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple | list):
        return ",".join(value)
    return str(value)


S = Setting
TLS_FILES = "the image; compose mounts TLS_DIR there, Kubernetes the Secret chat-tls"
PORTS = "the image (its ports are in compose's health checks, nginx's upstreams, k8s Services)"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# One call per variable, laid out as a table: edit a default in place.
# fmt: off
SECTIONS = (
    Section(
        "Secrets",
        "Secrets (hex only: they are embedded in URLs)",
        (
            S("DJANGO_SECRET_KEY", "str", "development-only-insecure-key-" + "x" * 32,
              "Django's signing key (sessions, CSRF tokens); scripts/up generates it.",
              (SERVICE,), production=REQUIRED, secret=True),
            S("POSTGRES_PASSWORD", "str", REQUIRED,
              "The database password: postgres starts with it, DATABASE_URL is built from it.",
              (COMPOSE,), secret=True),
            S("REDIS_PASSWORD", "str", None,
              "Redis's password: REDIS_URL is built from it; with REDIS_SENTINELS the service "
              "reads it itself.",
              (SERVICE, COMPOSE), production=REQUIRED, secret=True, compose=()),
            S("DJANGO_SECRET_KEY_FALLBACKS", "list", (),
              "Old signing keys still accepted while rotating (comma list).",
              (SERVICE,), secret=True,
              note="Old keys still accepted for signed data while rotating (comma list; "
              "docs/operations.md)."),
        ),
    ),
    Section(
        "Mode",
        "Mode: local (the default) serves plain HTTP, published on loopback only; production "
        "serves HTTPS/WSS only. `scripts/up --production` switches for good: it writes "
        "STACK_MODE=production, NGINX_TLS=on and Django's secure settings below into .env, and "
        "from then on every `scripts/up` refuses to start without them or without a usable "
        "certificate in TLS_DIR (docs/operations.md, \"HTTPS only: production mode\").",
        (
            S("STACK_MODE", "choice", "local",
              "local: plain HTTP on loopback; production: HTTPS/WSS only, checked by scripts/up.",
              (UP,), choices=("local", "production")),
            S("COMPOSE_PROJECT_NAME", "str", "chatstack",
              "The compose project (containers, networks, volumes); one per stack on an engine.",
              (UP,), commented=True,
              note="The compose project: production is chatstack; `scripts/up --env NAME` writes "
              "chatstack-NAME, its own ports and TLS_DIR into NAME.env for a second stack "
              "(docs/operations.md \"Staging\")."),
            S("DJANGO_ENV", "choice", "development",
              "production requires the secrets and services; development embeds SQLite and "
              "the in-memory channel layer.",
              (SERVICE,), stack="production", choices=("development", "production"),
              set_by="production in compose.yaml, k8s and the image; scripts/dev runs development",
              compose=(DJANGO,)),
            S("DJANGO_SETTINGS_MODULE", "str", "chatsite.settings",
              "Django's settings module.",
              (SERVICE,), set_by="the image and manage.py"),
        ),
    ),
    Section(
        "Exposure",
        "Exposure: only nginx publishes ports, HTTP_PORT and HTTPS_PORT, both on HTTP_BIND. "
        "scripts/up refuses plain HTTP beyond loopback (HTTP_BIND other than 127.0.0.1, ::1, "
        "localhost) unless TLS is on, or ALLOW_PLAIN_HTTP=true says a proxy in front of this "
        "host terminates TLS (then also NGINX_TRUST_FORWARDED_PROTO=true). Production on a "
        "public address: HTTP_BIND=0.0.0.0, HTTP_PORT=80, HTTPS_PORT=443.",
        (
            S("HTTP_BIND", "str", "127.0.0.1",
              "The host address nginx's ports are published on.", (COMPOSE, UP)),
            S("HTTP_PORT", "int", 8080,
              "The published plain HTTP port (only a redirect to HTTPS when NGINX_TLS=on).",
              (COMPOSE, UP)),
            S("ALLOW_PLAIN_HTTP", "bool", False,
              "true: plain HTTP beyond loopback is allowed (a proxy in front terminates TLS).",
              (UP,)),
            S("DJANGO_ALLOWED_HOSTS", "list", ("localhost", "127.0.0.1", "[::1]"),
              "Host names the site answers to (comma list); WebSocket origins must match.",
              (SERVICE,), production=REQUIRED, stack=("localhost", "127.0.0.1"),
              note="Host names the site answers to (comma list); add your domain. WebSocket "
              "origins must match."),
            S("DJANGO_CSRF_TRUSTED_ORIGINS", "list", (),
              "Origins allowed to POST, e.g. https://chat.example.org (comma list); WebSocket "
              "pages too.",
              (SERVICE,),
              note="Origins allowed to POST, e.g. https://chat.example.org (comma list)."),
            S("CHAT_ALLOWED_ORIGINS", "list", (),
              "Origins (scheme://host[:port]) whose pages may open the WebSocket; empty: the "
              "page's own origin on an allowed host, and DJANGO_CSRF_TRUSTED_ORIGINS.",
              (SERVICE,),
              note="Pages that may open the WebSocket, compared as scheme, host and port "
              "(comma list, e.g. https://chat.example.org). Empty: a page of the site itself "
              "(the origin it was requested at, on a DJANGO_ALLOWED_HOSTS host) and "
              "DJANGO_CSRF_TRUSTED_ORIGINS; set: these and DJANGO_CSRF_TRUSTED_ORIGINS only."),
        ),
    ),
    Section(
        "TLS and browser security",
        "TLS at nginx (production mode turns it on): NGINX_TLS=on serves HTTPS/WSS on HTTPS_PORT "
        "with TLS_DIR/tls.crt (the full chain) and tls.key (readable by nginx, uid 101); "
        "HTTP_PORT then only redirects there. `scripts/tls-cert` makes a self-signed pair for "
        "staging. nginx sends HSTS for NGINX_HSTS_SECONDS (0 tells browsers to forget it).",
        (
            S("NGINX_TLS", "choice", "off",
              "on: nginx serves HTTPS/WSS with TLS_DIR's certificate and redirects plain HTTP.",
              (NGINX, UP), choices=("on", "off")),
            S("HTTPS_PORT", "int", 8443,
              "The published HTTPS port (nginx's redirects name it).", (COMPOSE, UP)),
            S("TLS_DIR", "str", "./tls",
              "Folder with tls.crt (full chain) and tls.key, mounted into nginx.", (COMPOSE, UP)),
            S("NGINX_HSTS_SECONDS", "int", 31536000,
              "Strict-Transport-Security max-age nginx sends over HTTPS (0: browsers forget it).",
              (NGINX, UP), minimum=0),
            S("DJANGO_SECURE_SSL_REDIRECT", "bool", False,
              "Django redirects plain HTTP requests to HTTPS.",
              (SERVICE, UP), production=True, stack=False,
              note="Django insists on HTTPS too: redirect, Secure session/CSRF cookies, HSTS on "
              "its answers. Production mode sets true, true and NGINX_HSTS_SECONDS (scripts/up "
              "checks them)."),
            S("DJANGO_SECURE_COOKIES", "bool", False,
              "Session and CSRF cookies are sent over HTTPS only.",
              (SERVICE, UP), production=True, stack=False),
            S("DJANGO_HSTS_SECONDS", "int", 0,
              "Strict-Transport-Security max-age on Django's answers.",
              (SERVICE, UP), production=31536000, stack=0, minimum=0),
            S("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "bool", False,
              "HSTS covers subdomains too.",
              (SERVICE,), production=True,
              note="HSTS details, and the Content-Security-Policy every page carries. Joining "
              "the browsers' preload list is hard to undo: only on purpose."),
            S("DJANGO_HSTS_PRELOAD", "bool", False,
              "Ask browsers' HSTS preload lists to include the site.", (SERVICE,)),
            S("DJANGO_CSP", "str", CSP,
              "The Content-Security-Policy header of every page.", (SERVICE,)),
            S("NGINX_PUBLIC_HTTPS_PORT", "int", 443,
              "The HTTPS port clients reach, for nginx's redirects (omitted when 443).",
              (NGINX,), stack=8443, compose=(NGINX_SERVICE,),
              set_by="compose, from HTTPS_PORT; Kubernetes, k8s/base/config/nginx.env"),
            S("NGINX_TLS_PORT", "int", 8443, "nginx's HTTPS port inside its container.",
              (NGINX,), set_by=PORTS),
            S("NGINX_TLS_CERT", "str", "/etc/nginx/tls/tls.crt",
              "The certificate chain nginx reads with NGINX_TLS=on.",
              (NGINX,), set_by=TLS_FILES),
            S("NGINX_TLS_KEY", "str", "/etc/nginx/tls/tls.key",
              "The private key nginx reads with NGINX_TLS=on.",
              (NGINX,), set_by=TLS_FILES),
        ),
    ),
    Section(
        "Images",
        "Images: upstream by default. Air-gapped sites point these at a mirror or local "
        "stand-ins (`scripts/up --airgap` writes them); CHAT_IMAGE/NGINX_APP_IMAGE are ours, "
        "built from this repo.",
        (
            S("PYTHON_IMAGE", "str", "python:3.11-slim-bookworm",
              "Base image of the chat image and of nginx's static-files stage.", (COMPOSE,)),
            S("NGINX_IMAGE", "str", "nginx:1.27-alpine", "Base image of nginx.", (COMPOSE,)),
            S("REDIS_IMAGE", "str", "redis:7.4-alpine",
              "Redis (and Sentinel, compose.ha.yaml).", (COMPOSE,)),
            S("POSTGRES_IMAGE", "str", "postgres:16-bookworm", "PostgreSQL.", (COMPOSE,)),
            S("CHAT_IMAGE", "str", "chatstack/chat",
              "The chat service's image (built from services/chat).", (COMPOSE, UP)),
            S("NGINX_APP_IMAGE", "str", "chatstack/nginx",
              "Our nginx image (built from nginx/).", (COMPOSE, UP)),
            S("CHAT_TAG", "str", "latest", "The tag of both of our images.", (COMPOSE, UP)),
            S("CHATSTACK_AIRGAP", "bool", False,
              "true: compose never pulls (scripts/up --airgap records it with the stand-ins).",
              (UP,), commented=True,
              note="Switches scripts write: --airgap's (never pull), and scripts/promote's tag "
              "(while CHAT_TAG is it, scripts/up runs the promoted images and builds nothing; "
              "docs/operations.md \"Staging\")."),
            S("CHATSTACK_PROMOTED", "str", "",
              "The tag scripts/promote wrote; while CHAT_TAG equals it, scripts/up builds nothing.",
              (UP,), commented=True),
        ),
    ),
    Section(
        "Data tier topology",
        "Data tier topology: the files compose reads. `scripts/up --ha` writes "
        "COMPOSE_FILE=compose.yaml:compose.ha.yaml (Redis primary + replica + 3 Sentinels, "
        "failover in 3 to 5 seconds), `scripts/up --shards` compose.yaml:compose.shards.yaml (the "
        "channel layer over two Redis); docs/operations.md \"Redis high availability\". Unset: "
        "one Redis.",
        (
            S("COMPOSE_FILE", "str", "compose.yaml",
              "The compose files docker compose reads (colon list).", (UP,), commented=True),
            S("SENTINEL_DOWN_AFTER_MS", "int", 3000,
              "Milliseconds without an answer before Sentinel starts a failover.", (COMPOSE,),
              note="Sentinel: seconds x 1000 without an answer before a failover starts, and "
              "before a failed one is tried again (compose.ha.yaml; Sentinel's own defaults "
              "are 30000 and 180000)."),
            S("SENTINEL_FAILOVER_TIMEOUT_MS", "int", 30000,
              "Milliseconds before a failed failover is tried again.", (COMPOSE,)),
            S("REDIS_URL", "str", None,
              "One Redis, redis://:password@host:6379/0; unset in development: the in-memory "
              "channel layer.",
              (SERVICE,), production=REQUIRED, stack=BUILT, compose=(DJANGO,),
              set_by="compose and k8s build it from REDIS_PASSWORD; the HA and shard topologies "
              "empty it"),
            S("REDIS_URLS", "list", None,
              "Shards: several independent Redis (comma list of redis:// URLs).",
              (SERVICE,), set_by="compose.shards.yaml"),
            S("REDIS_SENTINELS", "list", None,
              "Sentinels (host:port comma list) watching REDIS_MASTER_NAME.",
              (SERVICE,), set_by="compose.ha.yaml; Kubernetes components/redis-ha"),
            S("REDIS_MASTER_NAME", "list", ("chat",),
              "The masters the Sentinels watch (comma list): one shard each.",
              (SERVICE,), set_by="compose.ha.yaml; Kubernetes components/redis-ha"),
            S("REDIS_SENTINEL_PASSWORD", "str", Ref("REDIS_PASSWORD"),
              "The Sentinels' password, if not REDIS_PASSWORD.",
              (SERVICE,), set_by="nothing in this stack: its Sentinels use REDIS_PASSWORD"),
        ),
    ),
    Section(
        "Scale",
        "Scale: replicas of each worker kind (nginx spreads load over all of them).",
        (
            S("WEB_REPLICAS", "int", 2, "Containers of the web role.", (COMPOSE,)),
            S("WS_REPLICAS", "int", 2, "Containers of the ws role.", (COMPOSE,)),
        ),
    ),
    Section(
        "web role",
        "web role: uwsgi (default) or gunicorn; nginx follows the same variable.",
        (
            S("HTTP_SERVER", "choice", "uwsgi",
              "The web role's server; nginx speaks uwsgi or HTTP to it accordingly.",
              (WEB, NGINX), choices=("uwsgi", "gunicorn")),
            S("WEB_PROCESSES", "int", 2, "Worker processes of the web role.", (WEB,),
              note="Per core, 2 processes x 2 threads served the most pages "
              "(docs/PERFORMANCE.md); more threads only trade the GIL back and forth. Workers "
              "are replaced after WEB_MAX_REQUESTS (50000, 10 % jitter) and the web role skips "
              "Django's per-request connection check (DATABASE_CONN_HEALTH_CHECKS below)."),
            S("WEB_THREADS", "int", 2, "Threads per web worker process.", (WEB,)),
            S("WEB_TIMEOUT", "int", 30,
              "Seconds a request may run before its worker is killed (uWSGI harakiri, gunicorn).",
              (WEB,),
              note="Seconds before a stuck request's worker is killed (compose's stop grace "
              "period, 40 s, outlasts it), requests before a worker is replaced (5000 cost a "
              "p99 of 1 s), and connections the kernel queues for the role."),
            S("WEB_MAX_REQUESTS", "int", 50000,
              "Requests before a worker is replaced (10 % jitter).", (WEB,), minimum=0),
            S("WEB_LISTEN_BACKLOG", "int", 128,
              "Connections the kernel queues for uWSGI (capped by net.core.somaxconn).", (WEB,)),
            S("WEB_PORT", "int", 8000, "The web role's application port (uwsgi or HTTP).",
              (WEB,), set_by=PORTS),
            S("PROBE_PORT", "int", 8081,
              "The web role's plain HTTP port for /healthz, /readyz and /metrics.",
              (WEB,), set_by=PORTS),
            S("PROMETHEUS_MULTIPROC_DIR", "str", None,
              "Where worker processes share their metrics (emptied at start).",
              (SERVICE, WEB), defaults=((WEB, "/tmp/prometheus"),),  # noqa: S108 - the container's own /tmp
              set_by="start-web, /tmp/prometheus; the ws role is one process and needs none"),
        ),
    ),
    Section(
        "ws role (Daphne)",
        "ws role (Daphne): a graceful drain on stop, shorter than compose's stop_grace_period "
        "(30 s).",
        (
            S("WS_DRAIN_SECONDS", "float", 10.0,
              "Seconds the ws role spends closing sockets (4012) after SIGTERM.",
              (SERVICE,), minimum=0),
            S("DAPHNE_PING_INTERVAL", "int", 20,
              "Seconds between pings on idle sockets (below nginx's proxy_read_timeout, 60 s).",
              (SERVICE,), minimum=1,
              note="Seconds between pings on idle sockets; must stay below nginx's "
              "proxy_read_timeout (60 s). A socket that leaves a ping unanswered for "
              "DAPHNE_PING_TIMEOUT is closed."),
            S("DAPHNE_PING_TIMEOUT", "int", 30,
              "Seconds a ping may go unanswered before the socket is closed.",
              (SERVICE,), minimum=1),
            S("DAPHNE_LISTEN_BACKLOG", "int", 1024,
              "Handshakes the kernel queues for each ws process (capped by net.core.somaxconn).",
              (SERVICE,), minimum=1,
              note="Handshakes the kernel queues for each ws process (a reconnect wave after a "
              "drain; capped by net.core.somaxconn), and seconds a handshake may wait for the "
              "database before it is reset."),
            S("DAPHNE_HANDSHAKE_TIMEOUT", "int", 20,
              "Seconds an opening handshake may wait for the consumer.",
              (SERVICE,), minimum=1),
            S("DAPHNE_APPLICATION_CLOSE_TIMEOUT", "int", 10,
              "Seconds a closed connection's consumer gets to finish.",
              (SERVICE,), minimum=1,
              note="Seconds a closed socket's consumer gets to finish, and the longest a socket "
              "may live (empty: CHANNEL_GROUP_EXPIRY, which it must not exceed)."),
            S("DAPHNE_WEBSOCKET_TIMEOUT", "int", Ref("CHANNEL_GROUP_EXPIRY"),
              "Seconds a socket may live at most; never above CHANNEL_GROUP_EXPIRY.",
              (SERVICE,), stack=None, minimum=60),
            S("WS_MAX_MESSAGE_BYTES", "int", 65536,
              "Largest frame Daphne accepts (close 1009 beyond it, before any parsing).",
              (SERVICE,), minimum=1024,
              note="Frames larger than this are closed with 1009 by Daphne itself, before any "
              "parsing (CHAT_MAX_FRAME_BYTES below refuses smaller ones with an error frame)."),
            S("WS_MAX_PENDING_BYTES", "int", 1048576,
              "Output buffered for a client that does not read; beyond it the client is dropped.",
              (SERVICE,), minimum=65536,
              note="Slow readers (docs/RELIABILITY.md): a socket with more than "
              "WS_MAX_PENDING_BYTES unsent, or over half of it for WS_SLOW_READER_SECONDS, is "
              "dropped and resumes later; a catch-up waits at half."),
            S("WS_SLOW_READER_SECONDS", "float", 10.0,
              "Seconds a client may keep over half of WS_MAX_PENDING_BYTES unsent.",
              (SERVICE,), minimum=1),
            S("WS_RUNTIME_OVERRIDES", "str", "all",
              "all, none, or a comma list of the overrides of Daphne/autobahn/Twisted/Channels/"
              "channels_redis internals to keep (services/chat/chat/runtime/).",
              (SERVICE,),
              note="The ws role's overrides of upstream internals (services/chat/chat/runtime/, "
              "docs/PERFORMANCE.md \"Runtime overrides\"): all (default), none (stock Daphne, "
              "autobahn, Twisted, Channels, channels_redis: more CPU and memory per socket, same "
              "protocol), or a comma list of names such as twisted.write_now,channels.dispatch. "
              "For a dependency security release that breaks one, drop just that one."),
            S("WS_PORT", "int", 8000,
              "The ws role's port: WebSockets, /healthz, /readyz and /metrics.",
              (WS,), set_by=PORTS),
        ),
    ),
    Section(
        "Channel layer",
        "Channel layer: pubsub (lean per consumer) or core (channels_redis's own; see "
        "docs/PERFORMANCE.md).",
        (
            S("CHANNEL_LAYER", "choice", "pubsub",
              "pubsub or core: the channels_redis layer behind group broadcasts.",
              (SERVICE,), choices=("pubsub", "core")),
            S("REDIS_SOCKET_TIMEOUT", "float", 1.0,
              "Seconds a Redis call may block before the sender hears broadcast_delayed.",
              (SERVICE,), minimum=0.1,
              note="Seconds a Redis call may block before the sender hears broadcast_delayed, "
              "and the pool's size (a connect storm joins its groups at once; redis-py's "
              "default is 100)."),
            S("REDIS_MAX_CONNECTIONS", "int", 1000,
              "Connections in each process's Redis pool.", (SERVICE,), minimum=10),
            S("CHANNEL_CAPACITY", "int", 1000,
              "core layer: messages a channel queues before sends to it fail.",
              (SERVICE,), minimum=10,
              note="core layer only: messages a channel queues, and seconds a group membership "
              "lives in Redis (it must outlast DAPHNE_WEBSOCKET_TIMEOUT)."),
            S("CHANNEL_GROUP_EXPIRY", "int", 86400,
              "core layer: seconds a group membership lives in Redis.",
              (SERVICE,), minimum=60),
        ),
    ),
    Section(
        "Database",
        "Database: Postgres in the stack (DATABASE_URL, built from POSTGRES_PASSWORD); SQLite in "
        "development.",
        (
            S("DATABASE_CONN_MAX_AGE", "int", 0,
              "Seconds a worker keeps its database connection (0: one per request).",
              (SERVICE,), production=60, minimum=0,
              note="Seconds a worker keeps its Postgres connection (0 = one per request: 5x "
              "slower pages). Postgres's max_connections must cover web processes x threads + "
              "ws processes x their database threads."),
            S("DATABASE_CONN_HEALTH_CHECKS", "bool", True,
              "A SELECT 1 before each request's first query (empty: false for web, true for ws).",
              (SERVICE, WEB), stack=None, defaults=((WEB, False),),
              note="Django's SELECT 1 before each request's first query. Empty: the role's "
              "default, off for web (a page's second round trip; a connection broken by a "
              "Postgres restart fails one request per thread, then is replaced), on for ws."),
            S("DATABASE_CONNECT_TIMEOUT", "int", 3,
              "Seconds to wait for Postgres to accept a connection.",
              (SERVICE,), minimum=1),
            S("DATABASE_URL", "str", "sqlite:///{BASE_DIR}/db.sqlite3",
              "The database, one URL (postgres://user:password@host:5432/name).",
              (SERVICE,), production=REQUIRED, stack=BUILT, compose=(DJANGO,),
              set_by="compose and k8s build it from POSTGRES_PASSWORD"),
        ),
    ),
    Section(
        "Chat",
        "Chat: limits and history (docs/protocol.md).",
        (
            S("CHAT_MAX_ROOM_CHARS", "int", 200, "Longest room name.", (SERVICE,), minimum=1),
            S("CHAT_MAX_MESSAGE_CHARS", "int", 2000, "Longest message, in characters.",
              (SERVICE,), minimum=1),
            S("CHAT_MAX_FRAME_BYTES", "int", 16384,
              "Largest text frame the chat parses; larger ones get frame_too_large.",
              (SERVICE,), minimum=64),
            S("CHAT_RATE_PER_SECOND", "float", 10.0,
              "Messages per second a connection may send (token bucket rate).",
              (SERVICE,), minimum=0.01),
            S("CHAT_RATE_BURST", "int", 30, "The token bucket's size.", (SERVICE,), minimum=1),
            S("CHAT_ADDRESS_RATE_PER_SECOND", "float", 30.0,
              "Messages per second all of one client address's sockets may send together (per "
              "ws process).",
              (SERVICE,), minimum=0.01,
              note="All sockets of one client address together (as nginx saw it, after "
              "NGINX_TRUSTED_PROXIES), per ws process: without it one address could send "
              "NGINX_WS_CONN_PER_IP x CHAT_RATE_PER_SECOND messages a second."),
            S("CHAT_ADDRESS_RATE_BURST", "int", 90, "That token bucket's size.",
              (SERVICE,), minimum=1),
            S("CHAT_HISTORY_ON_JOIN", "int", 50,
              "Messages the room page shows, and the most a socket's ?history= gets.",
              (SERVICE,), minimum=0),
            S("CHAT_RESUME_BATCH", "int", 100,
              "Messages per catch-up write for a client resuming with ?after=.",
              (SERVICE,), minimum=1),
            S("CHAT_RETENTION_DAYS", "int", 30,
              "Days of history `manage.py prune_messages` keeps (0: forever).",
              (SERVICE,), minimum=0,
              note="Days of history to keep (0 = forever, and storage grows without bound). "
              "`manage.py prune_messages` deletes older messages, then rooms left empty; "
              "compose's service `prune` runs it hourly, Kubernetes the CronJob `prune`."),
        ),
    ),
    Section(
        "nginx",
        "nginx: per-client-address limits. Behind a proxy or load balancer that does not keep "
        "client addresses, list its addresses in NGINX_TRUSTED_PROXIES: nginx then takes the "
        "client's from X-Forwarded-For (docs/operations.md, \"Client addresses and limits\").",
        (
            S("NGINX_TRUSTED_PROXIES", "list", (),
              "Addresses or CIDRs of proxies in front of nginx whose X-Forwarded-For is believed "
              "(comma list); empty: none, the peer's address counts.",
              (NGINX,),
              note="Proxies in front of nginx (comma list of addresses or CIDRs, e.g. a "
              "Gateway's pod network): their X-Forwarded-For names the client. Empty: no "
              "header is believed, the connection's own address is the client's."),
            S("NGINX_WS_CONN_PER_IP", "int", 100, "Open WebSockets per client address.", (NGINX,)),
            S("NGINX_WS_HANDSHAKES_PER_SEC", "int", 10,
              "WebSocket handshakes per second per client address (429 beyond the burst).",
              (NGINX,), minimum=1),
            S("NGINX_WS_HANDSHAKE_BURST", "int", 100,
              "Handshakes a client address may make at once above that rate.",
              (NGINX,), minimum=0),
            S("NGINX_REQ_PER_SEC", "int", 20, "Page requests per second per client address.",
              (NGINX,)),
            S("NGINX_REQ_BURST", "int", 40, "Requests a client may exceed that rate by.",
              (NGINX,)),
            S("NGINX_TRUST_FORWARDED_PROTO", "bool", False,
              "true only when a TLS-terminating proxy in front sets X-Forwarded-Proto.",
              (NGINX,),
              note="true only when a TLS-terminating proxy in front sets X-Forwarded-Proto."),
            S("NGINX_PORT", "int", 8080, "nginx's plain HTTP port inside its container.",
              (NGINX,), set_by=PORTS),
            S("NGINX_STATUS_PORT", "int", 8082,
              "nginx's internal port for /nginx-status and /nginx-health: never published or "
              "routed.",
              (NGINX,), set_by=PORTS),
            S("WEB_UPSTREAM", "str", "web:8000", "Where nginx finds the web role.",
              (NGINX,), set_by="compose's service names; Kubernetes fully qualified names"),
            S("WS_UPSTREAM", "str", "ws:8000", "Where nginx finds the ws role.",
              (NGINX,), set_by="compose's service names; Kubernetes fully qualified names"),
            S("NGINX_RESOLVER", "str", None,
              "The DNS server nginx re-resolves web and ws with.",
              (NGINX,), set_by="nothing: start-nginx takes the container's nameserver"),
            S("CLUSTER_DOMAIN", "str", "cluster.local",
              "The cluster's DNS domain, for nginx's fully qualified upstreams.",
              (K8S,), set_by="Kubernetes only, k8s/base/config/nginx.env"),
            S("NGINX_CONF_DIR", "str", "/etc/nginx/chat",
              "The configuration templates nginx renders at start.",
              (NGINX,), set_by="the nginx image; the native test tier sets its own"),
            S("NGINX_RUN_DIR", "str", "/tmp/nginx",  # noqa: S108 - the container's own /tmp
              "Where the rendered configuration and nginx's temporary files go.",
              (NGINX,), set_by="the nginx image; the native test tier sets its own"),
            S("NGINX_STATIC_ROOT", "str", "/usr/share/nginx/static",
              "The collected static files nginx serves at /static/.",
              (NGINX,), set_by="the nginx image; the native test tier sets its own"),
            S("DJANGO_STATIC_ROOT", "str", "{BASE_DIR}/static",
              "Where collectstatic puts the static files.",
              (SERVICE,), set_by="the image, /app/static; nginx's image copies the files"),
        ),
    ),
    Section(
        "Monitoring overlay",
        "Monitoring overlay (compose.monitoring.yaml, docs/monitoring.md): images and the port "
        "of Prometheus on 127.0.0.1.",
        (
            S("PROMETHEUS_IMAGE", "str", "prom/prometheus:v3.5.0", "Prometheus.", (COMPOSE,)),
            S("NGINX_EXPORTER_IMAGE", "str", "nginx/nginx-prometheus-exporter:1.5.1",
              "The exporter of nginx's stub_status.", (COMPOSE,)),
            S("PROMETHEUS_PORT", "int", 9090, "Prometheus's port on 127.0.0.1.", (COMPOSE,)),
        ),
    ),
    Section(
        "Logs",
        "Logs: json (production) or text.",
        (
            S("LOG_FORMAT", "choice", "text", "One JSON object per line, or text.",
              (SERVICE,), production="json", choices=("json", "text")),
            S("LOG_LEVEL", "choice", "INFO", "The root logger's level.",
              (SERVICE,), choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
            S("DJANGO_DEBUG", "bool", True,
              "Django's debug pages (tracebacks with settings): never on a reachable stack.",
              (SERVICE,), production=False,
              note="Django's debug pages show tracebacks and settings to anyone: never true on "
              "a stack others can reach."),
            S("DEBUG", "str", None,
              "Non-empty: every start script and scripts/* traces its commands (set -x).",
              (WEB, WS, MIGRATE, NGINX),
              set_by="the command line, e.g. DEBUG=1 scripts/up; compose passes nothing"),
        ),
    ),
)
# fmt: on

SETTINGS = tuple(s for section in SECTIONS for s in section.settings)
DECLARED = {s.name: s for s in SETTINGS}

# Old name -> new name. Setting an old name stops the process and names the new one. (DEBUG is
# not among them: it is every script's trace switch.)
RENAMED = {
    "SECRET_KEY": "DJANGO_SECRET_KEY",
    "ALLOWED_HOSTS": "DJANGO_ALLOWED_HOSTS",
    "CHANNEL_LAYER_BACKEND": "CHANNEL_LAYER",
}
