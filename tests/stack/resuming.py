"""Clients that behave like the room page's script: reconnect on any close and resume.

`ResumingClient` keeps a socket in one room, reconnecting after a short random delay with
`?after=<last id>` (docs/protocol.md), and records every id it got, duplicates, close codes and
reconnect times. `SteadySender` sends at a fixed rate, reconnecting when its socket goes;
`ExactlyOnceSender` sends the way room.js does (a client_id per message, sent again after a
reconnect until the room has it). Scenario tests run them through a fault and then demand: every
stored id reached every client once, in order, and every message sent was stored exactly once.
"""

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.functional import origin_of, ws_url

RETRYABLE = (ConnectionClosed, InvalidHandshake, InvalidStatus, OSError, TimeoutError)


class Background:
    """Runs `self._run()` as a task between start() and stop()."""

    _task = None

    def start(self):
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class ResumingClient(Background):
    def __init__(self, base_url, room):
        self.base_url = base_url
        self.room = room
        self.ids = []
        self.duplicates = 0
        self.closes = Counter()
        self.reconnect_seconds = []
        self.connected = asyncio.Event()

    @property
    def last_id(self):
        return self.ids[-1] if self.ids else 0

    async def _run(self):
        lost_at = None
        while True:
            url = ws_url(self.base_url, self.room, after=self.last_id)
            try:
                async with connect(url, origin=origin_of(self.base_url), open_timeout=5) as ws:
                    if lost_at is not None:
                        self.reconnect_seconds.append(time.monotonic() - lost_at)
                        lost_at = None
                    self.connected.set()
                    async for raw in ws:
                        self._on_frame(json.loads(raw))
                    self.closes[ws.close_code] += 1
            except RETRYABLE as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                self.closes[code or type(exc).__name__] += 1
            lost_at = lost_at or time.monotonic()
            await asyncio.sleep(random.uniform(0.1, 0.5))  # jitter, as room.js does

    def _on_frame(self, frame):
        if frame.get("type") != "message":
            return
        if frame["id"] <= self.last_id:
            self.duplicates += 1
        else:
            self.ids.append(frame["id"])


class SteadySender(Background):
    """Sends `{"message": ...}` every `interval` s until stopped, reconnecting when cut off."""

    def __init__(self, base_url, room, interval=0.2):
        self.base_url = base_url
        self.room = room
        self.interval = interval
        self.sent = 0
        self.errors = Counter()

    async def _run(self):
        url = ws_url(self.base_url, self.room)
        while True:
            try:
                async with connect(url, origin=origin_of(self.base_url), open_timeout=5) as ws:
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        while True:
                            await ws.send(json.dumps({"message": f"steady {self.sent}"}))
                            self.sent += 1
                            await asyncio.sleep(self.interval)
                    finally:
                        reader.cancel()
            except RETRYABLE as exc:
                self.errors[type(exc).__name__] += 1
            await asyncio.sleep(random.uniform(0.1, 0.5))

    async def _read(self, ws):
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "error":
                    self.errors[frame.get("code")] += 1


class ExactlyOnceSender(Background):
    """Sends every `interval` s as room.js does: each message with its own client_id, kept until
    the room echoes it (a message or an ack with that client_id), and sent again after every
    reconnect, or after a `rate_limited`/`unavailable` refusal of that message (docs/protocol.md,
    "Sending exactly once").

    `finish()` stops new messages and waits until every one sent is in the room. `stored` maps
    each client_id to the room's id for it; `twice` lists client_ids the room showed under two ids.
    """

    RETRY = frozenset({"rate_limited", "unavailable"})

    def __init__(self, base_url, room, interval=0.2):
        self.base_url = base_url
        self.room = room
        self.interval = interval
        self.tag = uuid.uuid4().hex[:8]  # client_ids of this sender: "<tag>-<n>"
        self.sent = 0  # distinct messages
        self.pending = {}  # client_id -> text, not yet seen in the room
        self.stored = {}  # client_id -> id
        self.twice = []
        self.refused = Counter()  # refused for good, by code
        self.errors = Counter()  # every error frame, by code
        self.closes = Counter()
        self.resent = 0
        self.acks = 0
        self.last_id = 0
        self.producing = True
        self._retry = {}  # client_id -> monotonic time to send it again

    def _frame(self, client_id):
        return json.dumps({"message": self.pending[client_id], "client_id": client_id})

    async def _run(self):
        while True:
            url = ws_url(self.base_url, self.room, after=self.last_id)
            try:
                async with connect(url, origin=origin_of(self.base_url), open_timeout=10) as ws:
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        self._retry.clear()
                        for client_id in list(self.pending):  # after every (re)connect
                            await self._send_again(ws, client_id)
                        while not reader.done():
                            now = time.monotonic()
                            for client_id, due in list(self._retry.items()):
                                if due <= now:
                                    del self._retry[client_id]
                                    await self._send_again(ws, client_id)
                            if self.producing:
                                client_id = f"{self.tag}-{self.sent}"
                                self.pending[client_id] = f"steady {self.sent}"
                                self.sent += 1
                                await ws.send(self._frame(client_id))
                            await asyncio.sleep(self.interval)
                    finally:
                        reader.cancel()
            except RETRYABLE as exc:
                self.closes[type(exc).__name__] += 1
            await asyncio.sleep(random.uniform(0.1, 0.5))

    async def _send_again(self, ws, client_id):
        if client_id in self.pending:  # not echoed meanwhile
            await ws.send(self._frame(client_id))
            self.resent += 1

    async def _read(self, ws):
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._on_frame(json.loads(raw))
        self.closes[ws.close_code] += 1

    def _on_frame(self, frame):
        kind, client_id = frame.get("type"), frame.get("client_id")
        if kind == "message":
            self.last_id = max(self.last_id, frame["id"])
        if kind == "error":
            self.errors[frame["code"]] += 1
            if client_id not in self.pending:
                return
            if frame["code"] in self.RETRY:
                self._retry[client_id] = time.monotonic() + (frame.get("retry_after") or 1.0)
            else:
                self.refused[frame["code"]] += 1
                del self.pending[client_id]
            return
        if kind == "ack":
            self.acks += 1
        if client_id is None or not client_id.startswith(self.tag):
            return
        if self.stored.setdefault(client_id, frame["id"]) != frame["id"]:
            self.twice.append((client_id, self.stored[client_id], frame["id"]))
        self.pending.pop(client_id, None)

    async def finish(self, timeout=60):
        """Stop sending new messages, wait until the room has every one sent, then stop."""
        self.producing = False
        try:
            await wait_until(
                lambda: not self.pending, timeout, f"the room to hold {len(self.pending)} sends"
            )
        finally:
            await self.stop()

    def summary(self):
        return (
            f"sent {self.sent}, stored once each {len(set(self.stored.values()))}, "
            f"never stored {len(self.pending)}, stored twice {len(self.twice)}, resent "
            f"{self.resent} (acks {self.acks}), refused {dict(self.refused)}, errors "
            f"{dict(self.errors)}"
        )

    def assert_exactly_once(self):
        """Every message sent is in the room once: none lost, none doubled."""
        assert not self.pending and not self.twice and not self.refused, self.summary()
        assert len(self.stored) == self.sent == len(set(self.stored.values())), self.summary()


async def wait_until(predicate, timeout, what):
    """Poll `predicate()` (sync) every 0.2 s; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.2)


def assert_complete(clients, newest):
    """Every client holds ids 1..newest exactly once, in order."""
    expected = list(range(1, newest + 1))
    for i, client in enumerate(clients):
        missing = sorted(set(expected) - set(client.ids))
        assert client.ids == expected and client.duplicates == 0, (
            f"client {i}: expected ids 1..{newest} once each in order; found {len(client.ids)} "
            f"ids, missing {missing[:20]}, {client.duplicates} duplicates, closes "
            f"{dict(client.closes)}"
        )


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


# -- room.js-like clients, recording senders, helpers for scenario tests ----------------------


class RoomJsClient(ResumingClient):
    """A ResumingClient that reconnects the way room.js does, and records when it opened.

    room.js waits a full-jitter delay in [1/2, 1] x min(30 s, 0.5 s x 2^attempt), resets the
    attempt count once a socket opens, and gives up on 4400/4422; a browser also waits for a slow
    handshake instead of abandoning it after 5 s. (ResumingClient retries every 0.1-0.5 s with a
    5 s handshake timeout: harsher than any page, which turns a slow moment into a retry storm.)
    `opened_at` holds the monotonic time of every open.
    """

    FATAL = frozenset({4400, 4422})

    def __init__(self, base_url, room, open_timeout=30.0):
        super().__init__(base_url, room)
        self.open_timeout = open_timeout
        self.opened_at = []

    async def _run(self):
        lost_at = None
        attempt = 0
        while True:
            url = ws_url(self.base_url, self.room, after=self.last_id)
            try:
                async with connect(
                    url, origin=origin_of(self.base_url), open_timeout=self.open_timeout
                ) as ws:
                    now = time.monotonic()
                    self.opened_at.append(now)
                    if lost_at is not None:
                        self.reconnect_seconds.append(now - lost_at)
                        lost_at = None
                    attempt = 0
                    self.connected.set()
                    async for raw in ws:
                        self._on_frame(json.loads(raw))
                    code = ws.close_code
            except InvalidStatus as exc:  # refused before the upgrade: say with what
                code = f"HTTP {exc.response.status_code}"
            except RETRYABLE as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None) or type(exc).__name__
            self.closes[code] += 1
            if code in self.FATAL:
                return
            lost_at = lost_at or time.monotonic()
            ceiling = min(30.0, 0.5 * 2**attempt)
            attempt += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)


async def stable_newest(read, settle=0.5, timeout=10.0):
    """`read()` (sync: a room's newest stored id) once two reads `settle` s apart agree.

    A sender stopped mid-send may have a frame in flight that is stored a moment later.
    """
    deadline = time.monotonic() + timeout
    last = await asyncio.to_thread(read)
    while True:
        await asyncio.sleep(settle)
        now = await asyncio.to_thread(read)
        if now == last or time.monotonic() > deadline:
            return now
        last = now


async def connect_in_waves(clients, make, count, *, wave=25, timeout=60.0):
    """Start `count` clients from `make()`, `wave` at a time, each wave connected before the next.

    Appends to `clients` as it goes, so the caller's cleanup stops every one even on a timeout.
    People arrive over seconds, not in one instant; each handshake costs the ws role a
    database round trip, and a storm of them is its own scenario, not this helper's.
    """
    deadline = time.monotonic() + timeout
    while len(clients) < count:
        batch = [make().start() for _ in range(min(wave, count - len(clients)))]
        clients.extend(batch)
        try:
            await wait_until(
                lambda batch=batch: all(c.connected.is_set() for c in batch),
                max(1.0, deadline - time.monotonic()),
                f"{len(clients)} of {count} clients to connect (in waves of {wave})",
            )
        except AssertionError as exc:
            failed = sum((c.closes for c in batch), Counter())
            open_now = sum(c.connected.is_set() for c in batch)
            raise AssertionError(
                f"{exc}: {open_now} opened; failed attempts {dict(failed)}"
            ) from None


async def stop_all(*runners):
    """Stop ResumingClients and SteadySenders; ones never started (or already stopped) are fine."""
    for runner in runners:
        if runner._task is not None:
            await runner.stop()
