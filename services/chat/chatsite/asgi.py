"""ASGI entry point: the `ws` role (Daphne). HTTP here serves probes, metrics and development."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from urllib.parse import urlparse  # noqa: E402

from channels.security.websocket import (  # noqa: E402
    AllowedHostsOriginValidator,
    WebsocketDenier,
)

from chat.routing import websocket_urlpatterns  # noqa: E402

# No AuthMiddlewareStack (the tutorial has one): the chat is anonymous and never reads
# scope["user"] or scope["session"], yet the session wrapper ran on every frame sent: without it a
# fan-out took about a tenth less CPU (docs/PERFORMANCE.md, "nosession"). Add it back with the first
# consumer that needs a user.
# Channels' own stack (ProtocolTypeRouter -> AllowedHostsOriginValidator -> URLRouter ->
# as_asgi()) does the same, but each of those coroutines stays suspended for the socket's life
# with its locals (the parsed Origin, a copy of the scope): 1.5 KB of every idle socket
# (docs/PERFORMANCE.md, "What was tuned"). Here: the same origin check (Channels' validator, from
# ALLOWED_HOSTS), the same URL patterns, the same consumers, one coroutine.
_origin = AllowedHostsOriginValidator(None)
_routes = [(route.pattern, route.callback) for route in websocket_urlpatterns]


def _origin_allowed(scope):
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            try:
                return _origin.valid_origin(urlparse(value.decode("latin1")))
            except UnicodeDecodeError:
                break
    return _origin.valid_origin(None)


async def application(scope, receive, send):
    """HTTP to Django; a WebSocket to its consumer, if its Origin is one of ALLOWED_HOSTS."""
    if scope["type"] != "websocket":
        return await django_asgi_app(scope, receive, send)
    if not _origin_allowed(scope):
        return await WebsocketDenier()(scope, receive, send)
    path = scope["path"].lstrip("/")
    for pattern, app in _routes:
        match = pattern.match(path)
        if match:
            rest, args, kwargs = match
            scope = dict(scope, path_remaining=rest, url_route={"args": args, "kwargs": kwargs})
            consumer = app.consumer_class(**app.consumer_initkwargs)
            return await consumer(scope, receive, send)
    raise ValueError(f"no route for WebSocket path {path!r}")  # routing.py ends with a catch-all
