"""ASGI apps that peel the cost of one idle WebSocket into layers (bench/run.py idlecost).

Run by Daphne with the baseline's settings (cwd bench/baseline, this folder on PYTHONPATH):
  idle_apps:bare      a raw ASGI coroutine: accept, then wait. Daphne + Twisted + autobahn only.
  idle_apps:consumer  + Channels: URLRouter and an AsyncWebsocketConsumer, no channel layer.
  idle_apps:layer     + the core Redis layer: a channel per consumer and a group_add.
  idle_apps:auth      + AuthMiddlewareStack (cookie, session, lazy user), as the tutorial has.
"""

import os
import sys

import idle_patches
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()
if unknown := idle_patches.install() - {"none"}:
    sys.exit(f"unknown BENCH_PATCHES for idle_apps: {sorted(unknown)}")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402


async def bare(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] != "websocket":
        await django_asgi_app(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.disconnect":
            return


class NoLayer(AsyncWebsocketConsumer):
    channel_layer_alias = "no-such-layer"  # get_channel_layer() returns None: no layer at all


class WithGroup(AsyncWebsocketConsumer):
    async def connect(self):
        group = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()


def _router(consumer, auth=False):
    inner = URLRouter([re_path(r"^ws/chat/(?P<room_name>[^/]+)/$", consumer.as_asgi())])
    return ProtocolTypeRouter(
        {"http": django_asgi_app, "websocket": AuthMiddlewareStack(inner) if auth else inner}
    )


consumer = _router(NoLayer)
layer = _router(WithGroup)
auth = _router(WithGroup, auth=True)
