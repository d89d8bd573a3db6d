"""Clients that behave like the room page's script: reconnect on any close and resume.

`ResumingClient` keeps a socket in one room, reconnecting after a short random delay with
`?after=<last id>` (docs/protocol.md), and records every id it got, duplicates, close codes and
reconnect times. `SteadySender` sends at a fixed rate, reconnecting when its socket goes.
Scenario tests run them through a fault and then demand: every stored id, once, in order.
"""

import asyncio
import contextlib
import json
import random
import time
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


class RecordingSender(SteadySender):
    """A SteadySender that also counts the close codes of its sockets (`closes`)."""

    def __init__(self, base_url, room, interval=0.2):
        super().__init__(base_url, room, interval)
        self.closes = Counter()

    async def _read(self, ws):
        await super()._read(ws)
        self.closes[ws.close_code] += 1


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
