"""Daphne overrides (written against Daphne 4.2.3), and the server class runws uses.

daphne.create_application
    Replaces: `daphne.server.Server.create_application`, with a copy of Daphne 4.2.3's (marked
    below) that differs in two lines: the input queue is an `ArrivalStampedQueue` (a LeanQueue:
    no idle deques and Event, ~1.5 KB of every idle socket, and each client frame stamped with
    its arrival time so the rate limit is charged at arrival, docs/RELIABILITY.md F11), and the
    scope carries `chat.pending_bytes` (the socket's unsent bytes: a catch-up waits for a slow
    reader instead of writing its whole backlog into memory, F10).
    Saves: part of 36 -> 18.7 KB per idle WebSocket (docs/PERFORMANCE.md, "What was tuned";
    `python bench/run.py idlecost`).
    Off: WS_RUNTIME_OVERRIDES without `daphne.create_application`: Daphne's own runs (an
    asyncio.Queue), and the two product additions are made around it without a copy: the scope
    entry before, and the arrival stamp by wrapping the returned queue's put_nowait.

The factory hook of `autobahn.lean_protocol` is here too: Daphne's `run()` assigns
`self.ws_factory = WebSocketFactory(...)`; a property intercepts that assignment and sets the
factory's protocol class. The check fails if `run()` no longer makes that assignment.

Always (product behaviour, not switchable): `listen_success` keeps the listening ports so a drain
can stop listening (chat.drain).
"""

import asyncio
import functools
import time

from daphne.server import Server

from chat.queues import LeanQueue
from chat.runtime import Hook, Override, enabled
from chat.runtime.autobahn import LeanWebSocketProtocol
from chat.runtime.twisted import pending_bytes


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


def protocol_pending_bytes(protocol):
    """Unsent bytes of a connection's socket; 0 once it is gone."""
    transport = getattr(protocol, "transport", None)
    if transport is None or getattr(transport, "disconnected", False):
        return 0
    return pending_bytes(transport)


class DrainableServer(Server):
    """Daphne's server, keeping its listening ports so a drain can close them."""

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory):
        # Daphne.run() builds the factory; every socket's protocol comes from it.
        if enabled("autobahn.lean_protocol"):
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
        """Daphne's create_application, with a stamping queue and the socket's backlog in scope."""
        if not enabled("daphne.create_application"):
            # Daphne's own, the product's two additions made around it (no copy, no internals)
            scope["chat.pending_bytes"] = functools.partial(protocol_pending_bytes, protocol)
            input_queue = super().create_application(protocol, scope)
            if input_queue is not None:
                input_queue.put_nowait = functools.partial(stamp_then, input_queue.put_nowait)
            return input_queue
        # --- copied from daphne 4.2.3 server.py Server.create_application; changed lines marked
        assert "application_instance" not in self.connections[protocol]
        input_queue = ArrivalStampedQueue()  # changed: was asyncio.Queue()
        scope.setdefault("asgi", {"version": "3.0"})
        scope["chat.pending_bytes"] = functools.partial(protocol_pending_bytes, protocol)  # added
        instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=functools.partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return input_queue
        # --- end of copy


def stamp_then(put_nowait, item):
    """Stamp a client frame with its arrival time, then queue it with `put_nowait`."""
    if item.get("type") == "websocket.receive":
        item["received_at"] = time.monotonic()
    put_nowait(item)


OVERRIDES = (
    Override(
        name="daphne.create_application",
        library="daphne",
        replaces="daphne.server.Server.create_application (copied)",
        saves="an asyncio.Queue per socket (~1.5 KB idle); arrival stamps (F11), reader wait (F10)",
        hooks=(
            Hook(
                "daphne.server:Server.create_application",
                ("self", "protocol", "scope"),
                "f1e300b4ecf636c8",
            ),
            Hook("daphne.server:Server.handle_reply", ("self", "protocol", "message")),
            Hook("daphne.server:Server", attrs=("connections", "application")),
        ),
    ),
)

ALWAYS = (Hook("daphne.server:Server.listen_success", ("self", "port")),)
