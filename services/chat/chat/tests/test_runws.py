"""The ws role's server process (manage.py runws): real Daphne, real sockets, real signals."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from tests.servers import free_port, port_open, stop, wait_for

SERVICE = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def runws(tmp_path):
    """Start `manage.py runws` on a free port (SQLite, in-memory layer); yield (port, process)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", WS_DRAIN_SECONDS="4")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=SERVICE, env=env, check=True
    )
    port = free_port()
    log = (tmp_path / "runws.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runws", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=SERVICE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(port), 20, f"runws on port {port}")
        yield port, proc, tmp_path / "runws.log"
    finally:
        stop(proc)


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
        await asyncio.sleep(0.2)
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
    """Beyond WS_MAX_MESSAGE_BYTES Daphne (autobahn) drops the connection (1009 or, as autobahn
    does, a plain TCP close) before the app buffers or parses the frame."""
    port, _, log = runws

    async def scenario():
        async with websockets.connect(
            url(port), origin=f"http://127.0.0.1:{port}", max_size=None
        ) as ws:
            await ws.send("x" * 70000)
            return await closed(ws)

    assert asyncio.run(scenario()) in (1009, None)
    text = log.read_text()
    assert "reject" not in text  # the application never saw the frame
    assert "Traceback" not in text
