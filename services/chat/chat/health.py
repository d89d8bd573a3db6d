"""/healthz, /readyz and /metrics, served by both the WSGI and the ASGI side."""

import contextlib
import functools
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from chat import lifecycle
from chat import metrics as chat_metrics

PROBE_TIMEOUT = 2  # seconds; below the probes' own timeouts (3 s) so we answer 503, not time out


@never_cache
def healthz(request):
    """The process is alive and serving; touches no dependency."""
    return HttpResponse("ok\n", content_type="text/plain")


@functools.cache
def _redis(shard):
    """A client of the shard's current primary; through Sentinel it follows a failover (a
    connection to a demoted or dead primary fails once, the next asks Sentinel again)."""
    return shard.client(timeout=PROBE_TIMEOUT)


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


DATABASE_SIZE_EVERY = 60  # seconds: pg_database_size walks the database's files
_database_size_read = [float("-inf")]  # when this process last read it (monotonic)


def database_size():
    """Update chat_database_size_bytes (Postgres only), at most once a minute per process: the
    figure behind the DatabaseDiskFilling alert. Errors leave the last value (and
    chat_dependency_up reports the database)."""
    now = time.monotonic()
    if connection.vendor != "postgresql" or now - _database_size_read[0] < DATABASE_SIZE_EVERY:
        return
    _database_size_read[0] = now
    # A scrape must still answer when Postgres does not; PostgresUnreachable says why.
    with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        chat_metrics.DATABASE_SIZE.set(cursor.fetchone()[0])


def _outcome(check, *args):
    try:
        check(*args)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        return f"error: {type(exc).__name__}: {exc}"[:300]


def dependency_checks():
    """{name: "ok" | "error: ..."} for the database and the channel layer; updates the gauges.

    With several shards, "channel_layer" is "ok" only when every shard answers, and each shard
    is reported as "shard <label>"; the gauge chat_dependency_up{dependency="channel_layer"}
    follows the same rule (an alert for a lost shard), /readyz does not (below).
    """
    checks = {"database": _outcome(_check_database)}
    shards = settings.REDIS_SHARDS or []
    per_shard = {shard.label: _outcome(lambda s: _redis(s).ping(), shard) for shard in shards}
    if len(shards) == 1:
        checks["channel_layer"] = next(iter(per_shard.values()))
    elif shards:
        down = [label for label, outcome in per_shard.items() if outcome != "ok"]
        checks["channel_layer"] = (
            f"error: {len(down)} of {len(shards)} shards down: {', '.join(down)}" if down else "ok"
        )
        checks.update({f"shard {label}": outcome for label, outcome in per_shard.items()})
    else:
        checks["channel_layer"] = "ok"  # the in-memory layer (development)
    for name in ("database", "channel_layer"):
        chat_metrics.DEPENDENCY_UP.labels(dependency=name).set(checks[name] == "ok")
    return checks


def _ready(checks):
    """The database answers and at least one shard does: a process that can reach some rooms
    keeps serving them (taking every replica out for one lost shard would stop every room)."""
    shard_checks = [v for k, v in checks.items() if k.startswith("shard ")]
    layer_ok = "ok" in shard_checks if shard_checks else checks["channel_layer"] == "ok"
    return checks["database"] == "ok" and layer_ok and "draining" not in checks


@never_cache
def readyz(request):
    """Ready to serve: database and channel layer reachable, not draining. 503 otherwise."""
    checks = dependency_checks()
    if lifecycle.draining:
        checks["draining"] = "yes"
    ready = _ready(checks)
    return JsonResponse({"ready": ready, **checks}, status=200 if ready else 503)


@never_cache
def metrics(request):
    """Prometheus text format; aggregated over worker processes when they share a directory."""
    dependency_checks()  # so chat_dependency_up is fresh at every scrape
    database_size()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
