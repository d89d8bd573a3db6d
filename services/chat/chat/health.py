"""/healthz, /readyz and /metrics, served by both the WSGI and the ASGI side."""

import functools

import redis
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
def _redis():
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
    )


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_channel_layer():
    if settings.REDIS_URL:
        _redis().ping()


def dependency_checks():
    """{name: "ok" | "error: ..."} for the database and the channel layer; updates the gauge."""
    checks = {}
    for name, check in (("database", _check_database), ("channel_layer", _check_channel_layer)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
            checks[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        chat_metrics.DEPENDENCY_UP.labels(dependency=name).set(checks[name] == "ok")
    return checks


@never_cache
def readyz(request):
    """Ready to serve: database and channel layer reachable, not draining. 503 otherwise."""
    checks = dependency_checks()
    if lifecycle.draining:
        checks["draining"] = "yes"
    ready = all(value == "ok" for value in checks.values())
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
