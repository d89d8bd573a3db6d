"""autobahn overrides (written against autobahn 26.10.2 under Daphne 4.2.3).

autobahn.lean_protocol
    Replaces: the protocol class of Daphne's WebSocket factory (`daphne.ws_protocol.
    WebSocketProtocol`, an autobahn `WebSocketServerProtocol`) with `LeanWebSocketProtocol`; it
    overrides autobahn's `_connectionMade` (the CONFIG_ATTRS copy) and Daphne's `onOpen`.
    Why: an idle socket cost 37 KB, most of it state kept for the socket's life:
    - autobahn copies ~45 factory settings (`CONFIG_ATTRS`) onto every instance at connect
      unless the class has them: they are class attributes here (the same values, taken from the
      one factory);
    - the opening handshake (autobahn's raw request and parsed headers, Daphne's
      ConnectionRequest and Deferreds, Twisted's HTTP request kept by the HTTP channel, which
      stays the transport's producer) is dropped once the socket is open; Daphne's access log
      reads only request.path, which is kept;
    - autobahn's send_queue is a list instead of an (empty, 760-byte) deque.
    Saves: with the other memory overrides, 36 -> 18.7 KB per idle WebSocket (docs/PERFORMANCE.md,
    "What was tuned"; `python bench/run.py idlecost`); test_runtime.py bounds it on a live runws.
    Off: WS_RUNTIME_OVERRIDES without `autobahn.lean_protocol` (Daphne's factory keeps its class).
    Breaks outright with Daphne PR #575 (Twisted's native WebSocket instead of autobahn): the
    check then reports the missing autobahn names.
"""

from daphne.ws_protocol import WebSocketProtocol

from chat.runtime import Hook, Override


class _SendQueue(list):
    """autobahn's send_queue, which holds frames only during a chopped or synced send."""

    __slots__ = ()

    def popleft(self):
        return self.pop(0)


class _RequestPath:
    __slots__ = ("path",)

    def __init__(self, path):
        self.path = path


class LeanWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol without what an open socket never reads again."""

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


OVERRIDES = (
    Override(
        name="autobahn.lean_protocol",
        library="autobahn",
        replaces="daphne.ws_protocol.WebSocketProtocol (autobahn _connectionMade, CONFIG_ATTRS)",
        saves="most of 36 -> 18.7 KB per idle WebSocket (docs/PERFORMANCE.md)",
        hooks=(
            Hook(
                "autobahn.websocket.protocol:WebSocketServerProtocol._connectionMade",
                ("self",),
                "213dadb6d12d3d48",
            ),
            # copies CONFIG_ATTRS onto the instance only `if not hasattr(self, configAttr)`
            Hook(
                "autobahn.websocket.protocol:WebSocketProtocol._connectionMade",
                ("self",),
                "7ac58d8bb6c3c752",
                contains=("if not hasattr(self, configAttr)",),
            ),
            Hook(
                "autobahn.websocket.protocol:WebSocketServerProtocol",
                attrs=("CONFIG_ATTRS", "send_queue", "http_request_data", "http_headers"),
            ),
            Hook("daphne.ws_protocol:WebSocketProtocol.onOpen", ("self",), "6be066589e00abb0"),
            Hook(
                "daphne.ws_protocol:WebSocketProtocol",
                attrs=("request", "application_deferred"),
            ),
            Hook("twisted.web.http:HTTPChannel", attrs=("requests",)),
            # the assignment chat.runtime.daphne.DrainableServer.ws_factory intercepts
            Hook("daphne.server:Server.run", ("self",), contains=("self.ws_factory = ",)),
        ),
    ),
)

ALWAYS = ()
