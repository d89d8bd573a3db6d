"""Memory patches for one idle WebSocket under Daphne, and a tracemalloc probe (issue 6, idle).

Imported by runws_patched.py (our service) and idle_apps.py (bare Daphne apps); each patch is
named in BENCH_PATCHES and changes no behaviour a client can see. Measured with
`bench/run.py idle` / `idlecost` (bench/results/idle.jsonl, sessions tune-idle-*).

  config   autobahn copies ~45 factory settings onto every protocol instance at connect
           (WebSocketProtocol._connectionMade: `if not hasattr(self, a): setattr(...)`); with the
           settings as class attributes of a subclass the instance dict stays small. Same values.
  norequest
           Daphne's protocol keeps autobahn's ConnectionRequest (all headers, parsed twice) and
           the handshake's Deferreds for the socket's life; it reads only request.path (logs).
  slots    no per-connection instance dict growth from the consumer: TokenBucket with __slots__.
  nochannel
           pub/sub layer: a consumer's own channel is only a local queue; no Redis SUBSCRIBE per
           socket (our consumer is reached only through its group; only the drain, in-process,
           sends to a channel).
  leanq    Daphne's per-connection input queue and the pub/sub layer's per-channel queue as a
           LeanQueue (put_nowait/get for one reader) instead of asyncio.Queue, which carries three
           deques and an Event with a fourth (~760 B each, empty) for the socket's life.
  nohttp   after the upgrade, Twisted's HTTPChannel (kept as the transport's producer) no longer
           holds Daphne's WebRequest (headers, body buffer) in its `requests` list.
  sendq    autobahn's per-socket send_queue (an empty deque: 760 B) as a list with popleft();
           frames queue there only while a chopped/synced send is in progress.
  flatroute
           the WebSocket side of asgi.py as one function (the same origin check, the same URL
           patterns, the same consumers) instead of ProtocolTypeRouter -> OriginValidator ->
           URLRouter -> as_asgi(): each of those stays suspended, with its locals (the parsed
           Origin, a copy of the scope), for the socket's life.
  storm    runws listens with backlog=1024 (Twisted's default is 50) and gives an opening
           handshake 20 s (autobahn's openHandshakeTimeout, Daphne's default 5 s) instead of
           resetting it while handshakes queue behind a connection storm.
  onetask  our consumer's __call__ (the `loop` patch) reads the client in Daphne's own task and
           starts one task for the channel layer, instead of two tasks plus an asyncio.wait().

BENCH_TRACEMALLOC=DIR: start tracemalloc at import and dump a snapshot (DIR/snap-PID-N.tm, plus
a JSON of RSS and object counts by type) when the server holds N connections, N unchanged for
3 s; N=0 is taken when the server starts. Never for RSS figures: tracing costs memory itself.
"""

import collections
import gc
import json
import os
import time
import tracemalloc

KNOWN = {
    "config",
    "norequest",
    "slots",
    "nochannel",
    "leanq",
    "nohttp",
    "onetask",
    "storm",
    "sendq",
    "flatroute",
}
PATCHES = {p for p in os.environ.get("BENCH_PATCHES", "").split(",") if p}
TRACE_DIR = os.environ.get("BENCH_TRACEMALLOC")
if TRACE_DIR:
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dump(n):
    """Snapshot now: tracemalloc, RSS, and the 40 most numerous object types."""
    gc.collect()
    stem = f"{TRACE_DIR}/snap-{os.getpid()}-{n}"
    tracemalloc.take_snapshot().dump(stem + ".tm")
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    with open(stem + ".json", "w") as f:
        json.dump(
            {
                "connections": n,
                "rss_kb": rss_kb(),
                "traced": tracemalloc.get_traced_memory(),
                "types": types.most_common(60),
            },
            f,
        )


def install_trace():
    import daphne.server
    from twisted.internet import task

    run = daphne.server.Server.run

    def traced_run(self):
        state = {"n": -1, "since": time.monotonic(), "done": set()}

        def check():
            n = len(getattr(self, "connections", {}))
            now = time.monotonic()
            if n != state["n"]:
                state["n"], state["since"] = n, now
            elif now - state["since"] >= 3 and n not in state["done"] and n >= 100:
                state["done"].add(n)
                dump(n)

        dump(0)
        task.LoopingCall(check).start(1.0, now=False)
        return run(self)

    daphne.server.Server.run = traced_run


def patch_config():
    """Factory settings as class attributes: autobahn then copies none onto the instance."""
    import daphne.server
    import daphne.ws_protocol

    base = daphne.ws_protocol.WebSocketProtocol

    class SharedConfigProtocol(base):
        pass

    factory_init = daphne.ws_protocol.WebSocketFactory.__init__
    set_options = daphne.ws_protocol.WebSocketFactory.setProtocolOptions

    def init(self, *args, **kwargs):
        factory_init(self, *args, **kwargs)
        self.protocol = SharedConfigProtocol
        _share(self)

    def setProtocolOptions(self, *args, **kwargs):
        set_options(self, *args, **kwargs)
        _share(self)

    def _share(factory):
        for name in SharedConfigProtocol.CONFIG_ATTRS:
            if hasattr(factory, name):
                value = getattr(factory, name)
                # a function (perMessageCompressionAccept) must not become a bound method
                setattr(
                    SharedConfigProtocol, name, staticmethod(value) if callable(value) else value
                )

    daphne.ws_protocol.WebSocketFactory.__init__ = init
    daphne.ws_protocol.WebSocketFactory.setProtocolOptions = setProtocolOptions


def patch_norequest():
    """Drop the handshake request and Deferreds once the socket is open."""
    import daphne.ws_protocol

    proto = daphne.ws_protocol.WebSocketProtocol
    on_open = proto.onOpen

    def onOpen(self):
        on_open(self)
        # Daphne reads self.request.path only for its access log; keep just that.
        self.request = _PathOnly(self.request.path)
        self.handshake_deferred = None
        self.application_deferred = None
        # autobahn keeps the raw opening handshake (bytes and parsed headers) for the socket's
        # life; nothing reads them after the handshake.
        for name in ("http_request_data", "http_headers", "http_status_line", "websocket_origin"):
            if name in self.__dict__:
                self.__dict__[name] = None

    proto.onOpen = onOpen


class _PathOnly:
    __slots__ = ("path",)

    def __init__(self, path):
        self.path = path


def patch_slots():
    """TokenBucket with __slots__ (a class with a dict cannot lose it by subclassing: rebuilt)."""
    from chat import consumers, ratelimit

    skip = ("__dict__", "__weakref__")
    ns = {k: v for k, v in vars(ratelimit.TokenBucket).items() if k not in skip}
    ns["__slots__"] = ("rate", "burst", "clock", "tokens", "stamp")
    slotted = type("TokenBucket", (), ns)
    ratelimit.TokenBucket = consumers.TokenBucket = slotted


def patch_nochannel():
    """Pub/sub layer: a consumer's channel is a local queue only, never subscribed in Redis."""
    import asyncio

    from channels_redis import pubsub

    async def new_channel(self, prefix="specific."):
        channel = f"{self.prefix}{prefix}{pubsub.uuid.uuid4().hex}"
        self.channels[channel] = (_channel_queue or asyncio.Queue)()
        return channel

    send = pubsub.RedisPubSubLoopLayer.send

    async def send_local_first(self, channel, message):
        # A channel made here is reachable only from this process (the drain): hand it over.
        queue = self.channels.get(channel)
        if queue is None:
            return await send(self, channel, message)
        queue.put_nowait(self.channel_layer.serialize(message))

    pubsub.RedisPubSubLoopLayer.new_channel = new_channel
    pubsub.RedisPubSubLoopLayer.send = send_local_first


class LeanQueue:
    """asyncio.Queue's put_nowait() and get() for one reader, without its idle deques and Event.

    Items wait in a deque only while there are any; a waiting get() is woken with set_result(None)
    and then takes the item, so a get() cancelled after its wake-up loses nothing (as in asyncio).
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self):
        self._items = None
        self._waiter = None

    def qsize(self):
        return len(self._items) if self._items else 0

    def empty(self):
        return not self._items

    def put_nowait(self, item):
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self):
        import asyncio

        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("LeanQueue has one reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


class StampedLeanQueue(LeanQueue):
    """runws.ArrivalStampedQueue (84ea039) on a LeanQueue: client frames stamped on arrival."""

    __slots__ = ()

    def put_nowait(self, item):
        if item.get("type") == "websocket.receive":
            item["received_at"] = time.monotonic()
        super().put_nowait(item)


def patch_leanq():
    import daphne.server
    from channels_redis import pubsub

    def create_application(self, protocol, scope):
        # Daphne's Server.create_application with a LeanQueue (the same otherwise).
        import asyncio
        from functools import partial

        assert "application_instance" not in self.connections[protocol]
        input_queue = LeanQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(
            scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return input_queue

    daphne.server.Server.create_application = create_application
    try:  # services/chat from 84ea039 on: runws has its own create_application and queue
        from chat.management.commands import runws
    except ImportError:
        runws = None
    if runws is not None and hasattr(runws, "ArrivalStampedQueue"):
        runws.ArrivalStampedQueue = StampedLeanQueue

    async def _subscribe_to_channel(self, channel):
        self.channels[channel] = LeanQueue()
        await self._get_shard(channel).subscribe(channel)

    pubsub.RedisPubSubLoopLayer._subscribe_to_channel = _subscribe_to_channel
    global _channel_queue
    _channel_queue = LeanQueue


_channel_queue = None


def patch_nohttp():
    from daphne import http_protocol

    process = http_protocol.WebRequest.process

    def process_then_forget(self):
        result = process(self)
        if self.transport is None and self.channel is not None:  # upgraded to a WebSocket
            # The channel stays the transport's producer; nothing reads its requests again.
            self.channel.requests.clear()
        return result

    http_protocol.WebRequest.process = process_then_forget


def patch_onetask():
    import asyncio
    import functools

    from channels.exceptions import StopConsumer
    from channels.layers import get_channel_layer

    from chat import consumers

    async def call_one_task(self, scope, receive, send):
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
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
            me = asyncio.current_task()
            # An error in a layer handler ends the consumer, as Channels' dispatch does.
            layer_task.add_done_callback(
                lambda t: t.cancelled() or t.exception() is None or me.cancel()
            )
        try:
            await pump(receive)
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            if layer_task is not None and layer_task.done() and not layer_task.cancelled():
                layer_task.result()  # the layer's error, not the cancellation it caused
            raise
        finally:
            if layer_task is not None:
                layer_task.cancel()
                await asyncio.gather(layer_task, return_exceptions=True)
            self._forget()

    consumers.ChatConsumer.__call__ = call_one_task


def patch_storm():
    from chat.management.commands import runws

    endpoints = runws.build_endpoint_description_strings
    runws.build_endpoint_description_strings = lambda **kw: [
        f"{e}:backlog=1024" for e in endpoints(**kw)
    ]
    init = runws.DrainableServer.__init__

    def init_with_timeouts(self, *args, **kwargs):
        kwargs.setdefault("websocket_handshake_timeout", 20)
        kwargs.setdefault("websocket_connect_timeout", 20)
        init(self, *args, **kwargs)

    runws.DrainableServer.__init__ = init_with_timeouts


class _SendQueue(list):
    __slots__ = ()

    def popleft(self):
        return self.pop(0)


def patch_sendq():
    import daphne.ws_protocol

    proto = daphne.ws_protocol.WebSocketProtocol
    made = proto._connectionMade

    def connection_made(self):
        made(self)
        self.send_queue = _SendQueue(self.send_queue)

    proto._connectionMade = connection_made


def patch_flatroute():
    from urllib.parse import urlparse

    from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier

    from chat.routing import websocket_urlpatterns
    from chatsite import asgi

    validator = AllowedHostsOriginValidator(None)
    routes = [(r.pattern, r.callback) for r in websocket_urlpatterns]
    http = asgi.application  # everything but WebSockets as before

    def origin_ok(scope):
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                try:
                    return validator.valid_origin(urlparse(value.decode("latin1")))
                except UnicodeDecodeError:
                    break
        return validator.valid_origin(None)

    async def application(scope, receive, send):
        if scope["type"] != "websocket":
            return await http(scope, receive, send)
        if not origin_ok(scope):
            return await WebsocketDenier()(scope, receive, send)
        path = scope["path"].lstrip("/")
        for pattern, callback in routes:
            match = pattern.match(path)
            if match:
                rest, args, kwargs = match
                scope = dict(scope, path_remaining=rest, url_route={"args": args, "kwargs": kwargs})
                consumer = callback.consumer_class(**callback.consumer_initkwargs)
                return await consumer(scope, receive, send)
        raise ValueError(f"No route found for path {path!r}.")

    asgi.application = application


def install():
    unknown = PATCHES - KNOWN
    if TRACE_DIR:
        install_trace()
    if "config" in PATCHES:
        patch_config()
    if "norequest" in PATCHES:
        patch_norequest()
    if "slots" in PATCHES:
        patch_slots()
    if "nochannel" in PATCHES:
        patch_nochannel()
    if "leanq" in PATCHES:
        patch_leanq()
    if "nohttp" in PATCHES:
        patch_nohttp()
    if "onetask" in PATCHES:
        patch_onetask()
    if "storm" in PATCHES:
        patch_storm()
    if "sendq" in PATCHES:
        patch_sendq()
    if "flatroute" in PATCHES:
        patch_flatroute()
    return unknown
