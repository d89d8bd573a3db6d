"""Serve the ASGI application (the ws role) with Daphne, draining WebSockets on SIGTERM."""

import daphne.server  # noqa: F401, I001 - installs Twisted's asyncio reactor; must come first

import asyncio
import functools
import logging
import resource
import signal
import time

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from django.core.management.base import BaseCommand
from twisted.internet import reactor, task, tcp

from chat import metrics
from chat.drain import drain
from chat.queues import LeanQueue

logger = logging.getLogger("chat.ws")


_buffered_write = tcp.Connection.write


def write_now(self, data):
    """Twisted's TCP write, but sent at once when nothing is queued, as asyncio's own transports
    do. Twisted queues every write and registers the socket for writing, then unregisters it
    once sent: two epoll_ctl calls and a loop callback per frame, about a quarter of a fan-out's
    CPU (docs/PERFORMANCE.md, "What was tuned"). What the kernel does not take is queued as before.
    """
    if data and self.connected and not self._writeDisconnected and not self._tempDataLen:
        if self.offset == len(self.dataBuffer):
            sent = self.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
    _buffered_write(self, data)


class ArrivalStampedQueue(LeanQueue):
    """An application's input queue that stamps each client frame with its arrival time.

    The consumer charges its rate limit at arrival, not when it gets to the frame: frames that
    waited behind a blocked consumer (Redis paused) are not refused afterwards as a burst.
    """

    __slots__ = ()

    def put_nowait(self, item):
        if item.get("type") == "websocket.receive":
            item["received_at"] = time.monotonic()
        super().put_nowait(item)


class _SendQueue(list):
    """autobahn's send_queue, which holds frames only during a chopped or synced send."""

    __slots__ = ()

    def popleft(self):
        return self.pop(0)


class LeanWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol without what an open socket never reads again.

    An idle socket cost 37 KB; most of it is state kept for the socket's life
    (docs/PERFORMANCE.md, "What was tuned"):
    - autobahn copies ~45 factory settings onto every instance at connect unless the class has
      them: they are class attributes here (the same values, taken from the one factory);
    - the opening handshake (autobahn's raw request and parsed headers, Daphne's
      ConnectionRequest and Deferreds, Twisted's HTTP request kept by the HTTP channel, which stays
      the transport's producer) is dropped once the socket is open; Daphne's access log reads only
      request.path, which is kept;
    - autobahn's send_queue is a list instead of an (empty, 760-byte) deque.
    """

    _config_from = None

    def _connectionMade(self):
        cls = type(self)
        if cls._config_from is not self.factory:
            for name in self.CONFIG_ATTRS:
                value = getattr(self.factory, name)
                # a function setting (perMessageCompressionAccept) must not become a method
                setattr(cls, name, staticmethod(value) if callable(value) else value)
            cls._config_from = self.factory
        super()._connectionMade()
        self.send_queue = _SendQueue(self.send_queue)

    def onOpen(self):
        super().onOpen()
        self.request = _RequestPath(self.request.path)
        self.application_deferred = None
        for name in ("http_request_data", "http_headers", "http_status_line"):
            self.__dict__.pop(name, None)
        http_channel = getattr(self.transport, "producer", None)
        if http_channel is not None and hasattr(http_channel, "requests"):
            http_channel.requests.clear()


class _RequestPath:
    __slots__ = ("path",)

    def __init__(self, path):
        self.path = path


class DrainableServer(Server):
    """Daphne's server, keeping its listening ports so a drain can close them."""

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory):
        # Daphne.run() builds the factory; every socket's protocol comes from it.
        factory.protocol = LeanWebSocketProtocol
        self._ws_factory = factory

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ports = []

    def listen_success(self, port):
        super().listen_success(port)
        self.ports.append(port)
        return port

    def create_application(self, protocol, scope):
        """Daphne's create_application, with a stamping queue and the socket's backlog in scope.

        `chat.pending_bytes` lets a consumer wait for a slow reader between catch-up batches
        instead of writing the whole backlog into memory (docs/RELIABILITY.md, F10).
        """
        assert "application_instance" not in self.connections[protocol]
        input_queue = ArrivalStampedQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        scope["chat.pending_bytes"] = functools.partial(protocol_pending_bytes, protocol)
        instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=functools.partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return input_queue


def pending_bytes(transport):
    """Bytes Twisted holds for a socket that the kernel would not take yet (a slow reader)."""
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)


def protocol_pending_bytes(protocol):
    """Unsent bytes of a connection's socket; 0 once it is gone."""
    transport = getattr(protocol, "transport", None)
    if transport is None or getattr(transport, "disconnected", False):
        return 0
    return pending_bytes(transport)


def shed_slow_readers(server, limit, patience, now=time.monotonic):
    """Drop connections that hold more than `limit` unsent bytes, or over half of it for
    `patience` seconds.

    Daphne buffers without bound for a client that stops reading, so one slow reader could grow
    the worker's memory until it is killed with everyone else's sockets. A catch-up waits while
    half the limit is unsent (consumers.ChatConsumer._wait_for_reader), so a client that has
    stopped reading sits just above half: `patience` ends that. The dropped client reconnects and
    resumes from its last id: the database has everything it missed.
    """
    sweep = now()
    for protocol in list(server.connections):
        transport = getattr(protocol, "transport", None)
        if (
            transport is None
            or getattr(transport, "disconnected", False)
            or getattr(transport, "_aborting", False)
        ):
            continue  # already dropped: counted once
        pending = pending_bytes(transport)
        if pending <= limit // 2:
            protocol.chat_backlogged_since = None
            continue
        since = getattr(protocol, "chat_backlogged_since", None) or sweep
        protocol.chat_backlogged_since = since
        if pending > limit or sweep - since >= patience:
            logger.warning(
                "slow reader dropped",
                extra={
                    "event": "slow_reader",
                    "pending_bytes": pending,
                    "seconds": round(sweep - since, 1),
                },
            )
            metrics.CLOSES.labels(code="slow_reader").inc()
            transport.abortConnection()


def raise_open_files_limit():
    """Lift the soft limit on open files to the hard one; return the new soft limit.

    Each socket is a descriptor, and container engines often start processes with a soft limit of
    1024 (Docker 25+) under a generous hard one; the operator sets the hard limit (ulimits).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1048576
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class Command(BaseCommand):
    help = "Run Daphne for HTTP and WebSocket; on SIGTERM drain sockets, then exit."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, bind, port, **options):
        from chatsite.asgi import application

        ws = settings.WS_SERVER
        # A reconnect wave after a drain arrives all at once: Twisted's default backlog (50) let
        # the kernel refuse handshakes, which nginx answered with 502 (docs/RELIABILITY.md, F9).
        endpoints = [
            f"{e}:backlog={ws['LISTEN_BACKLOG']}"
            for e in build_endpoint_description_strings(host=bind, port=port)
        ]
        server = DrainableServer(
            application=application,
            endpoints=endpoints,
            signal_handlers=False,  # ours below: drain first, then stop
            ping_interval=ws["PING_INTERVAL"],
            ping_timeout=ws["PING_TIMEOUT"],
            websocket_timeout=ws["WEBSOCKET_TIMEOUT"],
            websocket_max_message_size=ws["MAX_MESSAGE_BYTES"],
            # Opening handshakes queue behind the database during a connection storm; autobahn's
            # 5 s default reset them, and every client retried at once.
            websocket_handshake_timeout=ws["HANDSHAKE_TIMEOUT"],
            websocket_connect_timeout=ws["HANDSHAKE_TIMEOUT"],
            application_close_timeout=ws["APPLICATION_CLOSE_TIMEOUT"],
            # Only nginx reaches this port; take the client address and scheme it saw.
            proxy_forwarded_address_header="X-Forwarded-For",
            proxy_forwarded_port_header="X-Forwarded-Port",
            proxy_forwarded_proto_header="X-Forwarded-Proto",
            verbosity=0,
        )
        seconds = settings.CHAT["DRAIN_SECONDS"]

        async def drain_then_stop():
            await drain(server.ports, seconds)
            server.stop()

        def on_signal(signum, frame):
            # Runs between bytecodes of the reactor's thread; hand the work to the event loop.
            reactor.callFromThread(lambda: asyncio.ensure_future(drain_then_stop()))

        task.LoopingCall(
            shed_slow_readers, server, ws["MAX_PENDING_BYTES"], ws["SLOW_READER_SECONDS"]
        ).start(1.0, now=False)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        tcp.Connection.write = write_now  # this process only serves Daphne's sockets
        files = raise_open_files_limit()
        self.stdout.write(
            f"ws: Daphne on {bind}:{port}, drain {seconds:g} s on SIGTERM, {files} open files",
            ending="\n",
        )
        self.stdout.flush()
        server.run()
