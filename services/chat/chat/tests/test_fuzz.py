"""Property-based fuzzing of a live ws server: random frames and room names never hurt it."""

import asyncio
import json
from urllib.parse import quote

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.tests.live import start_runws
from tests.servers import stop

pytestmark = pytest.mark.timeout(240)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
frames = st.one_of(
    json_values.map(json.dumps),  # any JSON, including {"message": <anything>}
    st.dictionaries(st.just("message"), json_values).map(json.dumps),
    st.text(max_size=3000),  # arbitrary text, mostly invalid JSON
    st.binary(max_size=3000),  # binary frames
)
room_names = st.text(min_size=0, max_size=260)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One runws process for the whole module (fuzzing needs many quick examples)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    port, proc, log = start_runws(
        tmp,
        CHAT_RATE_PER_SECOND="1000",
        CHAT_RATE_BURST="1000",
        CHAT_ADDRESS_RATE_PER_SECOND="1000",  # every example comes from 127.0.0.1
        CHAT_ADDRESS_RATE_BURST="1000",
    )
    yield port, log
    stop(proc)


async def _exchange(port, room, frame):
    origin = f"http://127.0.0.1:{port}"
    base = f"ws://127.0.0.1:{port}/ws/chat/"
    async with websockets.connect(base + "healthy/", origin=origin) as healthy:
        try:
            async with websockets.connect(base + quote(room, safe="") + "/", origin=origin) as ws:
                await ws.send(frame)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply["type"] in ("message", "error", "close")
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is None or exc.rcvd.code != 1011, exc
            assert exc.rcvd is None or 4000 <= exc.rcvd.code <= 4999 or exc.rcvd.code == 1000
        except websockets.InvalidStatus as exc:  # a path the HTTP layer refuses outright
            assert exc.response.status_code in (400, 404), exc
        # Whatever happened there, a client elsewhere is still served.
        await healthy.send(json.dumps({"message": "still fine"}))
        assert json.loads(await asyncio.wait_for(healthy.recv(), 5))["message"] == "still fine"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(room=room_names, frame=frames)
def test_random_frames_and_room_names(live, room, frame):
    """No close 1011, no traceback in the server log, a healthy client elsewhere still served."""
    port, log = live
    asyncio.run(_exchange(port, room, frame))
    assert "Traceback" not in log.read_text()
