"""Bad input through nginx gets its documented outcome (docs/protocol.md); others are unaffected."""

import pytest

from tests.functional import Client, handshake_status, origin_of, unique_room, ws_url


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (b"\x00\x01binary", "binary_frame"),
        ('["a list"]', "not_an_object"),
        ('{"message": 42}', "message_not_string"),
        ('{"message": "   "}', "empty_message"),
        ('{"message": "' + "x" * 2001 + '"}', "message_too_long"),
    ],
    ids=["invalid_json", "binary", "not_object", "not_string", "blank", "too_long"],
)
async def test_refused_frame_gets_error_and_others_are_served(stack, frame, code):
    """The sender gets an error frame, its socket stays open; a client elsewhere still chats."""
    async with (
        Client(stack.base_url, unique_room("bad")) as bad,
        Client(stack.base_url, unique_room("good")) as good,
    ):
        await bad.send_raw(frame)
        reply = await bad.recv_frame(10)
        assert reply.get("type") == "error" and reply.get("code") == code, (
            f"expected an error frame {code!r}, found {reply}"
        )
        await bad.send_message("still here")
        assert (await bad.recv_message("still here", 10))["id"] == 1
        await good.send_message("unaffected")
        assert (await good.recv_message("unaffected", 10))["id"] == 1


async def test_overlong_room_name_is_closed_with_4400(stack):
    """A 201-character room name: a close frame saying why, then close code 4400."""
    async with Client(stack.base_url, "r" * 201) as client:
        code, detail = await client.closed(10)
    assert code == 4400 and "201" in (detail or ""), (
        f"expected 4400 naming the length, found {code} {detail!r}"
    )


async def test_cross_origin_websocket_is_refused(stack):
    """A handshake from another site's page (Origin not in DJANGO_ALLOWED_HOSTS) gets HTTP 403."""
    url = ws_url(stack.base_url, unique_room("origin"))
    assert await handshake_status(url, origin="https://evil.example") == 403
    assert await handshake_status(url, origin=origin_of(stack.base_url)) == 101
