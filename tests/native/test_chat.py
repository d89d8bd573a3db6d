"""The chat through nginx as a user meets it: the functional check, bad input, foreign origins."""

import json
import uuid

import pytest

from tests.functional import Client, check_chat, handshake_status, unique_room, ws_url

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "room",
    [None, f"a/b ?&#%+ 🙂 {uuid.uuid4().hex[:6]}"],
    ids=["unique-room", "url-special-room"],
)
async def test_functional_check_through_nginx(topo, room):
    """The shared check passes through nginx: page via uWSGI, 4 sockets via Daphne and Redis."""
    result = await check_chat(topo.nginx.base_url, clients=4, room=room)
    assert result["id"] >= 1
    assert result["timings"]["total"] < 10


async def test_functional_check_across_two_daphnes(topo):
    """Clients of one room on two Daphne processes (two nginx fronts) get each other's messages."""
    room = unique_room("two-daphnes")
    async with (
        Client(topo.nginx.base_url, room) as on_ws1,
        Client(topo.nginx_b.base_url, room) as on_ws2,
    ):
        for sender, receiver in ((on_ws1, on_ws2), (on_ws2, on_ws1)):
            text = f"cross {uuid.uuid4().hex}"
            await sender.send_message(text)
            sent, got = await sender.recv_message(text), await receiver.recv_message(text)
            assert sent["id"] == got["id"], f"expected one id for {text!r}, found {sent} {got}"


BAD_FRAMES = [
    pytest.param('{"message": "unterminated', "invalid_json", id="invalid-json"),
    pytest.param(b"\x00\x01\x02binary", "binary_frame", id="binary-frame"),
    pytest.param(json.dumps({"message": "x" * 2001}), "message_too_long", id="over-long-message"),
    pytest.param('["message"]', "not_an_object", id="not-an-object"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_frame_gets_an_error_and_the_socket_stays_open(topo, frame, code):
    """A refused frame answers an error frame, stores nothing; the socket and others carry on."""
    base = topo.nginx.base_url
    room, other_room = unique_room("bad"), unique_room("bystander")
    async with Client(base, other_room) as bystander, Client(base, room) as bad:
        await bad.send_raw(frame)
        error = await bad.recv_frame()
        assert error.get("type") == "error" and error.get("code") == code, (
            f"expected an error frame with code {code!r}, found {error}"
        )
        # Still open, and nothing was stored: the first accepted message of the room is id 1.
        await bad.send_message("fine now")
        accepted = await bad.recv_message("fine now")
        assert accepted["id"] == 1, f"expected the refused frame not to be stored, found {accepted}"
        await bystander.send_message("still served")
        served = await bystander.recv_message("still served")
        assert served["room"] == other_room


@pytest.mark.parametrize(
    ("room", "detail"),
    [
        pytest.param("r" * 201, "room name is 201 characters; the limit is 200", id="over-long"),
        pytest.param("zero\u200bwidth", "invisible character U+200B", id="invisible-char"),
    ],
)
async def test_invalid_room_is_closed_with_4400_after_a_close_frame(topo, room, detail):
    """An invalid room name: a `close` frame saying why, then close code 4400; others unharmed."""
    base = topo.nginx.base_url
    async with Client(base, unique_room("bystander")) as bystander:
        bad = await Client(base, room).connect()
        code, said = await bad.closed()
        assert code == 4400, f"expected close code 4400, found {code}"
        assert said and detail in said, f"expected a close frame saying {detail!r}, found {said!r}"
        assert bad.frames[-1]["code"] == 4400, f"expected the close frame last, found {bad.frames}"
        await bystander.send_message("after the bad room")
        await bystander.recv_message("after the bad room")


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example", "null"])
async def test_cross_origin_handshake_is_refused_with_403(topo, origin):
    """A WebSocket handshake from a foreign Origin is refused (HTTP 403) before it opens."""
    url = ws_url(topo.nginx.base_url, unique_room("origin"))
    status = await handshake_status(url, origin=origin)
    assert status == 403, f"expected HTTP 403 for Origin {origin!r}, found {status}"
    same = await handshake_status(url, origin=topo.nginx.base_url)
    assert same == 101, f"expected the same-origin handshake to open (101), found {same}"
