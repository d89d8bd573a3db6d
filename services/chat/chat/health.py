"""/healthz, /readyz and /metrics, served by both the WSGI and the ASGI side."""

import functools

from django.conf import settings
from django.db import connection
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
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
