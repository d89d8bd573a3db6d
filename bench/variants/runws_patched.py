#!/usr/bin/env python3
"""Run our ws role (manage.py runws) with experimental patches, to measure a change before
proposing it for services/chat (bench/ never edits it).

Every patch below has since been adopted by services/chat (84ea039, c5197e9): on today's service
they change nothing or undo part of it. They stay to reproduce the tuning figures on a copy of an
older services/chat (BENCH_SERVICE=<copy>, docs/PERFORMANCE.md "How to rerun").

usage (cwd services/chat, with the service's usual environment):
  BENCH_PATCHES=dispatch[,...] python ../../bench/variants/runws_patched.py runws --port ...

patches:
  dispatch  ChatConsumer.dispatch without Channels' per-message `aclose_old_connections()` (a
            thread hop through sync_to_async for every frame and every broadcast delivered);
            our consumer reaches the database only through database_sync_to_async, which closes
            stale connections itself before and after each call.
  nosession the WebSocket stack without AuthMiddlewareStack (cookie + session + user): our
            consumer never reads scope["user"] or scope["session"], yet Channels' session wrapper
            inspects the session on every frame sent.
  loop      ChatConsumer.__call__ with one long-lived receive loop per source (client, channel
            layer) under a lock, instead of Channels' await_many_dispatch, which builds a new Task
            and an asyncio.wait() for every message; handlers still run one at a time.
  none      no patch (our runws through this script, e.g. for BENCH_TRACEMALLOC)
  config, norequest, slots, nochannel
            idle-memory patches, in idle_patches.py (applied to bare Daphne apps too).
"""

import daphne.server  # noqa: F401, I001 - installs Twisted's asyncio reactor first, as runws does

import os
import sys

sys.path.insert(0, os.getcwd())
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

import django

django.setup()

import idle_patches  # noqa: E402
from channels.consumer import get_handler_name  # noqa: E402

from chat import consumers  # noqa: E402

PATCHES = {p for p in os.environ.get("BENCH_PATCHES", "").split(",") if p}


async def dispatch_without_db_hop(self, message):
    handler = getattr(self, get_handler_name(message), None)
    if handler is None:
        raise ValueError(f"No handler for message type {message['type']}")
    await handler(message)


if "dispatch" in PATCHES:
    consumers.ChatConsumer.dispatch = dispatch_without_db_hop

if "nosession" in PATCHES:
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator

    from chat.routing import websocket_urlpatterns
    from chatsite import asgi

    asgi.application = ProtocolTypeRouter(
        {
            "http": asgi.django_asgi_app,
            "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )

if "loop" in PATCHES:
    import asyncio
    import functools

    from channels.exceptions import StopConsumer
    from channels.layers import get_channel_layer

    async def call_with_loops(self, scope, receive, send):
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            sources.append(self.channel_receive)
        self.base_send = send
        lock = asyncio.Lock()

        async def pump(source):
            while True:
                message = await source()
                async with lock:
                    await self.dispatch(message)

        tasks = [asyncio.ensure_future(pump(s)) for s in sources]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        except StopConsumer:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    consumers.ChatConsumer.__call__ = call_with_loops

unknown = idle_patches.install() - {"dispatch", "nosession", "loop", "none"}
if unknown:
    sys.exit(f"unknown BENCH_PATCHES: {sorted(unknown)}")

from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(["manage.py", *sys.argv[1:]])
