"""Twisted overrides (written against Twisted 26.10.0).

twisted.write_now
    Replaces: `twisted.internet.tcp.Connection.write` (`_newtls.ConnectionMixin.write` ->
    `abstract.FileDescriptor.write`), process-wide, installed by `manage.py runws` only.
    Why: Twisted queues every write and registers the socket for writing, then unregisters it
    once sent: two epoll_ctl calls and a loop callback per frame, about a quarter of a fan-out's
    CPU. Here a write goes to the socket at once when Twisted's own write would send it at the
    next writable event anyway: connected, not half-closed, not disconnecting or aborting, no TLS
    layer, no pull producer (it must see its write complete later, by resumeProducing()), and
    nothing queued before it. Everything else goes through Twisted's write unchanged. A send that
    finds the peer gone hands that error to the reactor's next event, as Twisted's doWrite does.
    Saves: part of the 8.18x deliveries per CPU-second of the tuned ws role against the tutorial
    (docs/PERFORMANCE.md, "What was tuned": the epoll_ctl pair per frame); `bench/session`
    reruns it (`python bench/run.py fanout`).
    Off: WS_RUNTIME_OVERRIDES without `twisted.write_now` (or `none`).

Also read, never replaced (the slow-reader shed and the catch-up wait of docs/RELIABILITY.md
F10 need the unsent byte count, which Twisted has no public call for): `dataBuffer`, `offset`,
`_tempDataLen`, `_aborting`, `disconnected` of a tcp.Connection. Checked as `ALWAYS` below.
"""

from twisted.internet import tcp

from chat.runtime import Hook, Override

_stock_write = tcp.Connection.write


def write_now(self, data):
    """Twisted's TCP write, sent at once when Twisted would send it at the next writable event."""
    if (
        type(data) is bytes
        and data
        and self.connected
        and not self._writeDisconnected
        and not self.disconnecting
        and not self._aborting
        and not self.TLS
        and not self._tempDataLen
        and self.offset == len(self.dataBuffer)
        and (self.producer is None or self.streamingProducer)
    ):
        sent = self.writeSomeData(data)
        if not isinstance(sent, int):
            # The peer is gone and this send took the socket's error (ECONNRESET) with it, so a
            # read would now see a clean EOF: hand the error to the reactor at its next event, as
            # Twisted's doWrite would (the upstream tier's abort tests: ConnectionLost, not Done).
            self.doRead = self.doWrite = lambda *args, **kwargs: sent
            self.startWriting()
            return
        if sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
    _stock_write(self, data)


def install():
    """Put write_now in place of tcp.Connection.write if switched on; True if it is in place."""
    from chat import runtime

    if runtime.enabled("twisted.write_now"):
        tcp.Connection.write = write_now
        return True
    tcp.Connection.write = _stock_write
    return False


def installed():
    return tcp.Connection.write is write_now


def pending_bytes(transport):
    """Bytes Twisted holds for a socket that the kernel would not take yet (a slow reader)."""
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)


_TCP_STATE = (
    "connected",
    "disconnecting",
    "disconnected",
    "_writeDisconnected",
    "_aborting",
    "TLS",
    "_tempDataLen",
    "_tempDataBuffer",
    "offset",
    "dataBuffer",
    "producer",
    "streamingProducer",
)

OVERRIDES = (
    Override(
        name="twisted.write_now",
        library="twisted",
        replaces="twisted.internet.tcp.Connection.write",
        saves="two epoll_ctl calls and a loop callback per frame (docs/PERFORMANCE.md)",
        hooks=(
            Hook("twisted.internet.tcp:Connection.write", ("self", "bytes"), "ea311df0946d3f99"),
            Hook(
                "twisted.internet.abstract:FileDescriptor.write",
                ("self", "data"),
                "3e46c97fc173bc7e",
            ),
            Hook("twisted.internet.tcp:Connection.writeSomeData", ("self", "data")),
            Hook("twisted.internet.tcp:Connection", attrs=_TCP_STATE),
            Hook("twisted.internet.tcp:Connection.abortConnection", ("self",)),
        ),
    ),
)

# Read only (pending_bytes), whatever the switch says.
ALWAYS = (
    Hook("twisted.internet.abstract:FileDescriptor", attrs=("dataBuffer", "offset")),
    Hook("twisted.internet.tcp:Connection", attrs=("_tempDataLen", "_aborting", "disconnected")),
)
