"""The ws role on its own process: what happens between a server-side close and the client's ack."""

import asyncio
import json
import os
import re
import struct

import pytest

from chat import runtime
from tests.functional import Client, unique_room, ws_url
from tests.native.stack import get
from tests.servers import wait_for

pytestmark = pytest.mark.timeout(60)


def gauge(proc, name):
    """A gauge's value from the ws process's own /metrics (no labels)."""
    text = get(f"http://127.0.0.1:{proc.port}/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"expected {name} in /metrics of {proc.name}"
    return float(match.group(1))


def masked_text_frame(text):
    """A client-to-server text frame (FIN, masked, payload under 126 bytes)."""
    payload = text.encode()
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + key + body


async def read_frame(reader):
    """(opcode, payload) of the next server frame (unmasked, any length)."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(length)


def test_ws_processes_run_the_overrides_the_switch_names(topo):
    """Both ws processes export chat_runtime_override_active as WS_RUNTIME_OVERRIDES (the
    tier's environment; `all` by default) says: the rerun with `none` runs the stock paths."""
    expected = runtime.parse(os.environ.get("WS_RUNTIME_OVERRIDES", "all"))
    for proc in (topo.ws1, topo.ws2):
        text = get(f"http://127.0.0.1:{proc.port}/metrics").text
        found = dict(
            re.findall(r'^chat_runtime_override_active\{name="([^"]+)"\} (\S+)$', text, re.M)
        )
        assert found == {n: "1.0" if n in expected else "0.0" for n in runtime.NAMES}, (
            f"expected {proc.name} to run {sorted(expected)}; /metrics says {found}"
        )


async def test_broadcast_to_a_socket_the_server_is_closing_is_dropped(topo, spawn):
    """A broadcast reaching a consumer after it closed the socket (here 4429, before the client
    acknowledged) is dropped quietly: no traceback, and the connection gauge returns to 0."""
    ws = topo.stack.ws("ws-close-race", CHAT_RATE_PER_SECOND="1", CHAT_RATE_BURST="2")
    spawn(ws)
    room = unique_room("close-race")
    url = ws_url(ws.base_url, room)
    path = url.split(str(ws.port), 1)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", ws.port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{ws.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {ws.base_url}\r\n\r\n".encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        async with Client(ws.base_url, room) as other:
            # Burst 2: frames 1-2 are stored, 3-4 refused, the 5th (3rd strike) closes with 4429.
            for _ in range(5):
                writer.write(masked_text_frame(json.dumps({"message": "flood"})))
            await writer.drain()
            for _ in range(20):
                opcode, payload = await asyncio.wait_for(read_frame(reader), 5)
                if opcode == 0x8:
                    break
            code = struct.unpack("!H", payload[:2])[0]
            assert (opcode, code) == (0x8, 4429), f"expected a 4429 close, found {opcode} {code}"
            # We do not answer the close: a broadcast now meets a closing socket.
            await other.send_message("into the closing window")
            await other.recv_message("into the closing window")
            # No condition to poll here: the broadcast is dropped without a trace; give the
            # consumer a moment to meet it before the socket ends.
            await asyncio.sleep(0.3)
    finally:
        writer.close()

    def both_gone():
        """Both consumers of the room logged their disconnect (the last thing each does)."""
        lines = ws.log.read_text().splitlines()
        left = [x for x in lines if '"event": "disconnect"' in x and room_tag in x]
        return len(left) == 2 and gauge(ws, "chat_ws_connections") == 0

    room_tag = room.rsplit(" ", 1)[1]  # unique_room's hex suffix
    await asyncio.to_thread(wait_for, both_gone, 10, f"both sockets of {room!r} counted out")
    errors = [line for line in ws.log.read_text().splitlines() if '"level": "ERROR"' in line]
    assert errors == [], f"expected no errors, found {errors}"
