"""Prometheus metrics. Multi-process uWSGI sets PROMETHEUS_MULTIPROC_DIR and /metrics aggregates."""

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge(
    "chat_ws_connections", "Open WebSocket connections", multiprocess_mode="livesum"
)
ACCEPTED = Counter("chat_messages_accepted_total", "Messages stored and broadcast")
REJECTED = Counter(
    "chat_messages_rejected_total", "Frames refused, by reason (the error code)", ["reason"]
)
DELIVERIES = Counter("chat_deliveries_total", "Message frames sent to clients")
CLOSES = Counter("chat_ws_closes_total", "Connections closed by the server, by code", ["code"])
LAYER_SEND = Histogram(
    "chat_channel_layer_send_seconds",
    "Time to hand a broadcast to the channel layer",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DELIVERY_LATENCY = Histogram(
    "chat_delivery_latency_seconds",
    "From a message being stored to its frame being handed to a receiver's socket",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEPENDENCY_UP = Gauge(
    "chat_dependency_up",
    "1 if the dependency answered at the last /readyz or /metrics, else 0",
    ["dependency"],
    # The newest answer of any worker: "min" would keep a recycled worker's last 0 forever.
    multiprocess_mode="mostrecent",
)
DRAINING = Gauge(
    "chat_draining", "1 while this process drains for shutdown", multiprocess_mode="max"
)
DATABASE_SIZE = Gauge(
    "chat_database_size_bytes",
    "pg_database_size of the chat's Postgres database, read at most once a minute per process",
    multiprocess_mode="mostrecent",
)
RUNTIME_OVERRIDE = Gauge(
    "chat_runtime_override_active",
    "1 if the runtime override (chat/runtime/, WS_RUNTIME_OVERRIDES) is active in this process",
    ["name"],
    multiprocess_mode="max",
)
