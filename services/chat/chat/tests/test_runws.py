"""The ws role's server process (manage.py runws): real Daphne, real sockets, real signals."""

import asyncio
import json
import re
import signal
import socket
import sqlite3
import subprocess
import time

import pytest
import websockets

from chat.tests import live
from tests.servers import port_open, stop, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def start_runws(tmp_path):
    """Start `manage.py runws` (chat.tests.live) with a 4 s drain and extra env; stopped after."""
    procs = []

    def start(**extra):
        port, proc, log = live.start_runws(tmp_path, WS_DRAIN_SECONDS="4", **extra)
        procs.append(proc)
        return port, proc, log

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture
def runws(start_runws):
    return start_runws()


def url(port, room="drain", query=""):
    return f"ws://127.0.0.1:{port}/ws/chat/{room}/{query}"


async def closed(ws):
    """Read until the server closes; return its close code."""
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


def test_sigterm_drains_sockets_then_exits(runws):
    """SIGTERM: new connections are refused at once, every client gets close 4012 (reconnect),
    spread over half the grace, and the process exits cleanly before the grace is over."""
    port, proc, log = runws

    async def scenario():
        origin = f"http://127.0.0.1:{port}"
        clients = [await websockets.connect(url(port), origin=origin) for _ in range(30)]
        await clients[0].send(json.dumps({"message": "before"}))
        assert json.loads(await clients[-1].recv())["message"] == "before"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(
            wait_for, lambda: not port_open(port), 2, "runws to stop listening after SIGTERM"
        )
        with pytest.raises(ConnectionRefusedError):
            await websockets.connect(url(port), origin=origin, open_timeout=2)
        codes = await asyncio.wait_for(asyncio.gather(*(closed(c) for c in clients)), 10)
        return codes, time.monotonic() - started

    codes, elapsed = asyncio.run(scenario())
    assert codes == [4012] * 30
    assert proc.wait(10) == 0
    assert elapsed < 4 + 1
    text = log.read_text()
    assert "left_open=0" in text and "Traceback" not in text


def test_frames_over_the_hard_cap_are_refused_by_daphne(runws):
    """A frame over CHAT_MAX_FRAME_BYTES reaches the app, which refuses it (an error frame, a
    `frame_too_large` reject in the log); one over WS_MAX_MESSAGE_BYTES is dropped by Daphne
    (autobahn) with the connection (1009 or, as autobahn does, a plain TCP close) before the app
    buffers or parses it: no error frame, and no second reject before the app's disconnect."""
    port, _, log = runws

    async def scenario():
        async with websockets.connect(
            url(port), origin=f"http://127.0.0.1:{port}", max_size=None
        ) as ws:
            await ws.send("x" * 20000)  # over CHAT_MAX_FRAME_BYTES (16384), under the cap (65536)
            refused = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send("x" * 70000)
            after = []
            try:
                while True:
                    after.append(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as exc:
                return refused, after, exc.rcvd.code if exc.rcvd else None
            except TimeoutError:
                return refused, after, "still open after 10 s"

    refused, after, code = asyncio.run(scenario())
    assert (refused["type"], refused["code"]) == ("error", "frame_too_large"), refused
    assert after == [] and code in (1009, None), f"expected a bare close, found {after} {code}"
    # Frames are handled in order: had the app seen the big one, its reject would come first.
    wait_for(lambda: " disconnect " in log.read_text(), 10, "the app to log the disconnect")
    text = log.read_text()
    rejects = [line for line in text.splitlines() if "frame_too_large" in line]
    assert len(rejects) == 1, f"expected one reject (the 20 000-byte frame), found {rejects}"
    assert "Traceback" not in text


def silent_socket(port, path):
    """A WebSocket opened by hand with a 4 KiB receive buffer, which never reads after the 101."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n".encode()
    )
    assert b" 101 " in sock.recv(1024), "expected the handshake to switch protocols"
    return sock


def socket_ended(sock, timeout):
    """Read until the peer ends the connection: "eof", "reset", or "open" after `timeout`."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "open"
    return "eof"


def test_a_slow_reader_is_dropped_not_buffered_forever(start_runws):
    """A client that stops reading is disconnected once WS_MAX_PENDING_BYTES are queued for it;
    a reading client in the same room keeps receiving everything, and the database has what the
    slow one missed (it resumes with ?after=<id>)."""
    port, proc, log = start_runws(
        WS_MAX_PENDING_BYTES="65536",
        CHAT_RATE_PER_SECOND="100000",
        CHAT_RATE_BURST="100000",
        CHAT_ADDRESS_RATE_PER_SECOND="100000",
        CHAT_ADDRESS_RATE_BURST="100000",
    )
    slow = silent_socket(port, "/ws/chat/slow/")

    async def flood():
        origin = f"http://127.0.0.1:{port}"
        async with (
            websockets.connect(url(port, "slow"), origin=origin) as sender,
            websockets.connect(url(port, "slow"), origin=origin) as reader,
        ):
            seen = 0
            for i in range(3000):
                await sender.send(json.dumps({"message": f"{i:05d}" + "x" * 1900}))
                await sender.recv()
                seen += 1 if json.loads(await reader.recv())["id"] else 0
                if i % 100 == 0 and "slow reader dropped" in log.read_text():
                    return seen
            return seen

    seen = asyncio.run(asyncio.wait_for(flood(), 60))
    assert "slow reader dropped" in log.read_text()
    assert seen >= 1  # the reading client got every message up to the drop, in lockstep
    assert socket_ended(slow, timeout=5) in ("reset", "eof")
    assert proc.poll() is None and "Traceback" not in log.read_text()


def test_listen_backlog_takes_a_reconnect_wave(start_runws):
    """The listening socket queues DAPHNE_LISTEN_BACKLOG handshakes (Twisted's default is 50): a
    wave of clients reconnecting after a drain waits in the kernel instead of being refused,
    which nginx would answer with 502 (RELIABILITY F9). `ss` shows a listener's backlog as Send-Q.
    """
    port, _, _ = start_runws(DAPHNE_LISTEN_BACKLOG="777")
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[2] == "777", out


def test_frames_are_stamped_on_arrival():
    """runws stamps each client frame as it is queued for the consumer, which charges its rate
    limit at that time, not when it gets to the frame (RELIABILITY F11)."""
    from chat.runtime.daphne import ArrivalStampedQueue

    async def scenario():
        queue = ArrivalStampedQueue()
        before = time.monotonic()
        queue.put_nowait({"type": "websocket.receive", "text": "{}"})
        queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
        return before, await queue.get(), await queue.get()

    before, frame, disconnect = asyncio.run(scenario())
    assert before <= frame["received_at"] <= time.monotonic()
    assert "received_at" not in disconnect


def test_a_reader_stuck_on_a_catch_up_is_dropped_after_patience(start_runws, tmp_path):
    """A client resuming over a long backlog that stops reading: the catch-up waits while half
    of WS_MAX_PENDING_BYTES is unsent (the worker does not buffer the backlog), and after
    WS_SLOW_READER_SECONDS with that much unsent the client is dropped (RELIABILITY F10)."""
    port, proc, log = start_runws(
        WS_MAX_PENDING_BYTES="65536", WS_SLOW_READER_SECONDS="2", CHAT_RESUME_BATCH="5"
    )

    # ~15 MB owed to a client resuming from 0: more than the kernel's socket buffers take.
    backlog = 8000
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        room = db.execute(
            "INSERT INTO chat_room (name, last_id, created_at) VALUES ('stuck', ?, ?)",
            (backlog, "2026-01-01 00:00:00"),
        ).lastrowid
        db.executemany(
            "INSERT INTO chat_message (room_id, seq, text, sent_at) VALUES (?, ?, ?, ?)",
            (
                (room, i, f"{i:05d}" + "x" * 1900, "2026-01-01 00:00:00")
                for i in range(1, backlog + 1)
            ),
        )
    slow = silent_socket(port, "/ws/chat/stuck/?after=0")
    started = time.monotonic()
    wait_for(lambda: "slow reader dropped" in log.read_text(), 15, "the stuck reader dropped")
    waited = time.monotonic() - started
    line = next(x for x in log.read_text().splitlines() if "slow reader dropped" in x)
    pending = int(re.search(r"pending_bytes=(\d+)", line).group(1))
    assert 2 <= waited < 10, waited
    assert 32768 < pending <= 65536, f"expected a drop by patience, not by the limit: {line}"
    assert socket_ended(slow, timeout=5) in ("reset", "eof")
    assert proc.poll() is None and "Traceback" not in log.read_text()
