"""HTTP middleware: a strict Content-Security-Policy; a readable 503 when the database is down."""

import logging

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.shortcuts import render

from chat import health

logger = logging.getLogger("chat.http")


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection into 503 with a page that says so, instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            logger.warning(
                "database unavailable", extra={"event": "db_unavailable", "path": request.path}
            )
            response = render(request, "chat/503.html", status=503)
            response["Retry-After"] = "5"
            return response
        return None


class ProbeMiddleware:
    """Serve /healthz, /readyz and /metrics before anything reads the Host header.

    Probes and Prometheus address each replica by its IP (Docker DNS, the kubelet), which is not
    in ALLOWED_HOSTS: CommonMiddleware would answer them 400 (DisallowedHost). They also come over
    plain HTTP from inside the deployment, and SecurityMiddleware would redirect them to HTTPS.
    This is the only route to these views. nginx answers these
    paths 404 from outside (nginx/conf/locations.conf.template): no public request reaches this."""

    def __init__(self, get_response):
        self.views = {
            "/healthz": health.healthz,
            "/readyz": health.readyz,
            "/metrics": health.metrics,
        }
        self.get_response = get_response

    def __call__(self, request):
        view = self.views.get(request.path_info)
        return view(request) if view is not None else self.get_response(request)
