"""Which pages may open the chat's WebSocket: the Origin header, compared as scheme + host + port.

Channels' AllowedHostsOriginValidator compares host names only, so a page on any port of an
allowed host (http://localhost:9999, https://127.0.0.1:1) could open a socket with the visitor's
cookies. Here an Origin is allowed when it is, exactly (scheme, host and port):

- one of CHAT_ALLOWED_ORIGINS or DJANGO_CSRF_TRUSTED_ORIGINS (the public URL's origin, e.g.
  https://chat.example.org); or, only while CHAT_ALLOWED_ORIGINS is empty,
- the origin of the request itself: the scheme nginx saw (X-Forwarded-Proto, which nginx always
  sets) and the Host header as the browser sent it (nginx passes it with its port), the host
  being one of DJANGO_ALLOWED_HOSTS. So http://127.0.0.1:8080 (scripts/up) and
  http://127.0.0.1:8000 (scripts/dev) work out of the box, and a page of another port does not.

No Origin, `null`, or anything that does not parse is refused (403), as Channels does.
"""

import functools
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(origin):
    """`scheme://host:port` with the default port filled in, lower case; None if unusable."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/"):
        return None
    if parts.username is not None or parts.query or parts.fragment:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


@functools.lru_cache(maxsize=8)
def _explicit(allowed, trusted):
    return frozenset(filter(None, map(normalize, (*allowed, *trusted))))


def explicit_origins():
    """The configured origins (CHAT_ALLOWED_ORIGINS and DJANGO_CSRF_TRUSTED_ORIGINS), normalized."""
    return _explicit(tuple(settings.CHAT_ALLOWED_ORIGINS), tuple(settings.CSRF_TRUSTED_ORIGINS))


def _header(scope, name):
    values = [value for key, value in scope.get("headers", ()) if key == name]
    if len(values) != 1:
        return None
    try:
        return values[0].decode("latin-1")
    except UnicodeDecodeError:
        return None


def own_origin(scope):
    """The origin the request was made to, if its host is one of ALLOWED_HOSTS; else None."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    proto = (_header(scope, b"x-forwarded-proto") or "").strip().lower()
    secure = proto == "https" or (not proto and scope.get("scheme") in ("wss", "https"))
    return normalize(f"{'https' if secure else 'http'}://{host}")


def allowed(scope):
    """True if the WebSocket handshake in `scope` comes from an allowed page."""
    raw = _header(scope, b"origin")
    origin = normalize(raw) if raw else None
    if origin is None:
        return False
    if origin in explicit_origins():
        return True
    if settings.CHAT_ALLOWED_ORIGINS:
        return False
    return origin == own_origin(scope)


class OriginCheck:
    """ASGI middleware: a WebSocket from a page that is not allowed is refused (403)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not allowed(scope):
            from channels.security.websocket import WebsocketDenier

            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
