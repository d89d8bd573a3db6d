"""ASGI entry point: the `ws` role (Daphne). HTTP here serves probes, metrics and development."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.runtime.channels import websocket_router  # noqa: E402

# No AuthMiddlewareStack (the tutorial has one): the chat is anonymous and never reads
# scope["user"] or scope["session"], yet the session wrapper ran on every frame sent: without it a
# fan-out took about a tenth less CPU (docs/PERFORMANCE.md, "nosession"). Add it back with the first
# consumer that needs a user.
# Origins: chat.origins.OriginCheck, not Channels' AllowedHostsOriginValidator, which compares
# host names only (a page on any port of an allowed host could open a socket): scheme, host and
# port must match. Channels' stack (ProtocolTypeRouter -> OriginCheck -> URLRouter -> as_asgi())
# keeps a coroutine per layer suspended for the socket's life; the runtime override
# channels.router (chat/runtime/channels.py) does the same origin check and routing in one
# coroutine; WS_RUNTIME_OVERRIDES=none builds the stack.
application = websocket_router(django_asgi_app, websocket_urlpatterns)
