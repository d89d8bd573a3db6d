"""Channels overrides (written against Channels 4.3.2).

channels.consumer_loop
    Replaces: `channels.consumer.AsyncConsumer.__call__` (copied from Channels 4.3.2 and changed):
    Channels' `await_many_dispatch` builds a Task and an asyncio.wait() for every message, a large
    share of a fan-out's CPU (docs/PERFORMANCE.md, "loop"); here each source (the client, the
    channel layer) has one long-lived receive loop, handlers run one at a time (a lock), each
    source in its own order, as Channels runs them. The client is read in the task Daphne runs
    the consumer in; only the channel layer gets a task of its own (a task, its coroutine and an
    asyncio.wait() are ~2 KB of every idle socket). `StopConsumer` from any handler ends the
    consumer cleanly, as in Channels; any other error from a layer handler ends it with that
    error, as in Channels.
    Saves: part of the 8.18x deliveries per CPU-second (docs/PERFORMANCE.md "loop";
    `python bench/run.py fanout`) and ~2 KB per idle socket (`python bench/run.py idlecost`).
    Off: Channels' own __call__ (await_many_dispatch).

channels.dispatch
    Replaces: `AsyncConsumer.dispatch` (copied from Channels 4.3.2 without its per-message
    `aclose_old_connections()`): a thread hop for every frame and every delivery; the chat's
    database calls go through database_sync_to_async, which closes stale connections itself.
    Saves: part of the 8.18x (docs/PERFORMANCE.md, "loop").
    Off: Channels' own dispatch. Channels PR #2179 moves close_old_connections to signals sent
    from dispatch/__call__: the source digests below fail the check when that lands.

channels.router
    Replaces: Channels' stack ProtocolTypeRouter -> OriginCheck -> URLRouter -> as_asgi() with
    one coroutine doing the same: each of those coroutines stays suspended for the socket's life
    with its locals (a copy of the scope): 1.5 KB of every idle socket (docs/PERFORMANCE.md,
    "What was tuned"). The origin check is the chat's own (chat.origins: scheme, host and port),
    the URL patterns and consumers the same.
    Saves: ~1.5 KB per idle socket (`python bench/run.py idlecost`).
    Off: chatsite.asgi builds Channels' own stack.
"""

import asyncio
import functools

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.security.websocket import WebsocketDenier

from chat import origins
from chat.origins import OriginCheck
from chat.runtime import Hook, Override, enabled


class LeanConsumerLoop:
    """Mixin for an AsyncConsumer: its __call__ and dispatch, switchable back to Channels'."""

    async def __call__(self, scope, receive, send):
        """Channels' AsyncConsumer.__call__ with one long-lived receive loop per source."""
        if not enabled("channels.consumer_loop"):
            return await super().__call__(scope, receive, send)
        # --- from channels 4.3.2 consumer.py AsyncConsumer.__call__, the dispatch loop replaced
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send  # an async consumer (Channels wraps `send` only for sync ones)
        lock = asyncio.Lock()

        async def pump(source):
            while True:
                message = await source()
                async with lock:
                    await self.dispatch(message)

        layer_task = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            layer_task = asyncio.ensure_future(pump(self.channel_receive))
            this = asyncio.current_task()
            # Anything raised by a layer handler (StopConsumer included) ends the consumer.
            layer_task.add_done_callback(
                lambda done: done.cancelled() or done.exception() is None or this.cancel()
            )
        try:
            await pump(receive)
        except StopConsumer:
            pass  # exit cleanly, as Channels does
        except asyncio.CancelledError:
            if layer_task is not None and layer_task.done() and not layer_task.cancelled():
                if isinstance(layer_task.exception(), StopConsumer):
                    # cancelled by the layer task's StopConsumer: exit cleanly, as Channels does
                    if asyncio.current_task().uncancel() == 0:
                        return
                layer_task.result()  # raise the layer handler's error, not the cancel it caused
            raise
        finally:
            if layer_task is not None:
                layer_task.cancel()
                await asyncio.gather(layer_task, return_exceptions=True)

    async def dispatch(self, message):
        """Channels' dispatch without its per-message aclose_old_connections()."""
        if not enabled("channels.dispatch"):
            return await super().dispatch(message)
        # --- from channels 4.3.2 consumer.py AsyncConsumer.dispatch, without the db hop
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)


def websocket_router(http_app, websocket_urlpatterns):
    """The ASGI application: HTTP to `http_app`; a WebSocket, if its Origin is allowed
    (chat.origins), to its consumer. One coroutine (channels.router) or Channels' own stack."""
    if not enabled("channels.router"):
        from channels.routing import ProtocolTypeRouter, URLRouter

        return ProtocolTypeRouter(
            {
                "http": http_app,
                "websocket": OriginCheck(URLRouter(websocket_urlpatterns)),
            }
        )

    routes = [(route.pattern, route.callback) for route in websocket_urlpatterns]

    async def application(scope, receive, send):
        if scope["type"] != "websocket":
            return await http_app(scope, receive, send)
        if not origins.allowed(scope):  # the same check as OriginCheck above
            return await WebsocketDenier()(scope, receive, send)
        path = scope["path"].lstrip("/")
        for pattern, app in routes:
            match = pattern.match(path)
            if match:
                rest, args, kwargs = match
                scope = dict(scope, path_remaining=rest, url_route={"args": args, "kwargs": kwargs})
                consumer = app.consumer_class(**app.consumer_initkwargs)
                return await consumer(scope, receive, send)
        raise ValueError(f"no route for WebSocket path {path!r}")  # routing ends with a catch-all

    return application


OVERRIDES = (
    Override(
        name="channels.consumer_loop",
        library="channels",
        replaces="channels.consumer.AsyncConsumer.__call__ (copied, loop replaced)",
        saves="a Task + asyncio.wait() per message; ~2 KB per idle socket (docs/PERFORMANCE.md)",
        hooks=(
            Hook(
                "channels.consumer:AsyncConsumer.__call__",
                ("self", "scope", "receive", "send"),
                "e52238720872dbc3",
            ),
            Hook("channels.consumer:AsyncConsumer", attrs=("channel_layer_alias", "_sync")),
            Hook("channels.layers:BaseChannelLayer.new_channel"),
        ),
    ),
    Override(
        name="channels.dispatch",
        library="channels",
        replaces="channels.consumer.AsyncConsumer.dispatch (copied, db hop removed)",
        saves="a thread hop (aclose_old_connections) per message (docs/PERFORMANCE.md)",
        hooks=(
            Hook(
                "channels.consumer:AsyncConsumer.dispatch",
                ("self", "message"),
                "39f34e7d4fb0f655",
            ),
            Hook("channels.consumer:get_handler_name", ("message",)),
        ),
    ),
    Override(
        name="channels.router",
        library="channels",
        replaces="ProtocolTypeRouter/OriginCheck/URLRouter/as_asgi coroutines",
        saves="~1.5 KB per idle socket (docs/PERFORMANCE.md, 'What was tuned')",
        hooks=(
            Hook("channels.security.websocket:WebsocketDenier"),
            Hook(
                "channels.routing:URLRouter.__call__",
                ("self", "scope", "receive", "send"),
                "bc956deb5a99008d",
            ),
            Hook(
                "channels.consumer:AsyncConsumer.as_asgi",
                contains=("consumer_class", "consumer_initkwargs"),
            ),
        ),
    ),
)

ALWAYS = ()
