"""The WebSocket consumer on every channel layer kind: broadcast, resume, ordering and bad input."""

import asyncio
import contextlib
import json

import pytest
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from chat import rooms, store
from chat.models import Message
from chat.tests.shards import shards_at

from .wsclient import Client

pytestmark = pytest.mark.timeout(60)


async def test_tutorial_client_receives_broadcast(layer):
    """A tutorial client (sends {"message"}, reads data["message"]) works unchanged; both get it."""
    async with Client("lobby") as a, Client("lobby") as b:
        assert a.connected and b.connected
        await a.send("hi")
        got_a, got_b = await a.recv(), await b.recv()
        assert got_a["message"] == got_b["message"] == "hi"
        assert got_a == got_b
        assert got_a["id"] == 1 and got_a["room"] == "lobby" and got_a["type"] == "message"


async def test_a_cancelled_consumer_stops_counting_as_open():
    """Daphne cancels an instance whose client left while it was busy: disconnect() never runs,
    yet the connection leaves OPEN and the open-connections gauge (a drain waits on OPEN)."""
    from chat import metrics
    from chat.consumers import OPEN

    before = (len(OPEN), metrics.CONNECTIONS._value.get())
    client = Client("ghost")
    await client.__aenter__()
    assert (len(OPEN), metrics.CONNECTIONS._value.get()) == (before[0] + 1, before[1] + 1)
    client.comm.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await client.comm.future
    assert (len(OPEN), metrics.CONNECTIONS._value.get()) == before


ROOM_NAMES = [
    "한국어 채팅방",
    "room with spaces",
    "punctuation!@#$%^&*()_+=[]{};:'\",.<>?~`",
    "</script><script>alert(1)</script>",
    "x" * 200,
    "chat_.looks-like-a-hash",
    "emoji 🎉 room",
    "a/b/c",
]


@pytest.mark.parametrize("name", ROOM_NAMES)
async def test_any_url_room_name_works(layer, name):
    """Unicode, spaces, punctuation and 200 characters all map to a valid channel-layer group."""
    BaseChannelLayer().require_valid_group_name(rooms.group_name(name))  # Channels' own rule
    async with Client(name) as a, Client(name) as b, Client("other") as other:
        await a.send("hello")
        assert (await b.recv())["room"] == name
        assert await other.nothing()


def test_group_names_are_collision_free():
    """Rooms that the tutorial's naive `chat_<room>` would confuse get distinct groups."""
    names = ["a", "A", "a.b", "a_b", "a-b", "a b", "chat_a", ".a", "x" * 80, "x" * 81, "é"]
    groups = [rooms.group_name(n) for n in names]
    assert len(set(groups)) == len(names)
    assert rooms.group_name("lobby") == "chat_lobby"  # the tutorial's group where it is valid


BAD_FRAMES = [
    # (what is sent, the error code the sender gets)
    ("text", "not json", "invalid_json"),
    ("text", "{'message': 'single quotes'}", "invalid_json"),
    ("text", "[1, 2]", "not_an_object"),
    ("text", '"just a string"', "not_an_object"),
    ("text", "42", "not_an_object"),
    ("text", "{}", "missing_message"),
    ("text", '{"msg": "typo"}', "missing_message"),
    ("text", '{"message": 42}', "message_not_string"),
    ("text", '{"message": {"nested": true}}', "message_not_string"),
    ("text", '{"message": null}', "message_not_string"),
    ("text", '{"message": ""}', "empty_message"),
    ("text", '{"message": " \\n\\t "}', "empty_message"),
    ("text", json.dumps({"message": "x" * 2001}), "message_too_long"),
    ("text", "x" * 20000, "frame_too_large"),
    ("binary", b'{"message": "hi"}', "binary_frame"),
    ("binary", b"\x00\xff\xfe", "binary_frame"),
]


@pytest.mark.parametrize(("kind", "frame", "code"), BAD_FRAMES, ids=[c for _, _, c in BAD_FRAMES])
async def test_bad_input_gets_an_error_frame_and_disturbs_nobody(layer, kind, frame, code):
    """Each bad frame: an error frame naming what was wrong; the socket stays open; nothing is
    broadcast or stored; the same sender and a client in another room are still served."""
    async with Client("room") as sender, Client("room") as peer, Client("elsewhere") as other:
        await (sender.send_raw(text=frame) if kind == "text" else sender.send_raw(binary=frame))
        error = await sender.recv()
        assert error["type"] == "error" and error["code"] == code and error["detail"]
        assert await peer.nothing()
        assert not await Message.objects.filter(room__name="room").aexists()

        await sender.send("still here")
        assert (await peer.recv())["message"] == "still here"
        await other.send("other room")
        assert (await other.recv())["message"] == "other room"


async def test_rate_limit_then_close(chat_limits):
    """Over the rate: error frames with retry_after; a sender who keeps going is closed 4429."""
    chat_limits(RATE_PER_SECOND=0.5, RATE_BURST=3)
    async with Client("r") as a:
        for i in range(3):
            await a.send(f"m{i}")
            assert (await a.recv())["id"] == i + 1
        await a.send("too fast")
        error = await a.recv()
        assert error["code"] == "rate_limited" and error["retry_after"] > 0
        for _ in range(2):  # RATE_BURST rejected frames in a row are answered...
            await a.send("still too fast")
            assert (await a.recv())["code"] == "rate_limited"
        await a.send("once more")  # ...and the next one closes the socket
        code, detail = await a.closed()
        assert code == 4429 and "rate" in detail
    assert await Message.objects.filter(room__name="r").acount() == 3


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/ws/chat/" + "y" * 201 + "/", 4400),
        ("/ws/chat/%20%20/", 4400),
        ("/ws/chat/bad%00name/", 4400),
        ("/ws/chat/bidi%E2%80%AEname/", 4400),
        ("/ws/chat//", 4400),
        ("/ws/chat/ok/?after=-1", 4422),
        ("/ws/chat/ok/?after=abc", 4422),
        ("/ws/chat/ok/?history=1e9", 4422),
        ("/ws/nothing-here/", 4404),
    ],
)
async def test_refused_connections_close_with_a_code_and_reason(path, code):
    """Invalid room names, resume parameters and paths: accepted, then closed with a 4xxx code."""
    async with Client(None, path=path) as c:
        assert c.connected
        got, detail = await c.closed()
        assert got == code and detail


async def test_cross_origin_handshake_is_refused():
    """AllowedHostsOriginValidator: a page on another site cannot open the socket."""
    async with Client("lobby", origin="http://evil.example") as c:
        assert not c.connected


async def test_resume_after_last_id_is_gap_free_without_duplicates(layer):
    """?after=N: every stored message after N, then live ones, each exactly once, in order."""
    for i in range(1, 8):
        await asyncio.to_thread(store.append, "resume", f"m{i}")
    async with Client("resume", "after=3") as c, Client("resume") as live:
        caught_up = await c.recv_many(4)
        assert [m["id"] for m in caught_up] == [4, 5, 6, 7]
        assert [m["message"] for m in caught_up] == ["m4", "m5", "m6", "m7"]
        await live.send("m8")
        assert (await c.recv())["id"] == 8
        assert await c.nothing()


async def test_resume_in_batches(chat_limits):
    """A resume longer than one database batch arrives whole."""
    chat_limits(RESUME_BATCH=3)
    for i in range(1, 11):
        await asyncio.to_thread(store.append, "batch", f"m{i}")
    async with Client("batch", "after=0") as c:
        assert [m["id"] for m in await c.recv_many(10)] == list(range(1, 11))
        assert await c.nothing()


async def test_history_on_join():
    """?history=N sends the room's last N messages first (capped by CHAT_HISTORY_ON_JOIN)."""
    for i in range(1, 6):
        await asyncio.to_thread(store.append, "hist", f"m{i}")
    async with Client("hist", "history=2") as c:
        assert [m["id"] for m in await c.recv_many(2)] == [4, 5]
        assert await c.nothing()
    async with Client("hist") as c:  # the tutorial's behaviour: live messages only
        assert await c.nothing()


async def test_crossed_broadcasts_are_delivered_in_order_once(layer):
    """Two senders' broadcasts can arrive out of order; each client still sees 1, 2, 3 once."""
    async with Client("order") as c:
        ids = [await asyncio.to_thread(store.append, "order", f"m{i}") for i in (1, 2, 3)]
        group = rooms.group_name("order")
        layer_ = get_channel_layer()
        # Broadcast 3 first, then 1 and 2 late (as if their senders were slower).
        for msg_id, *_ in (ids[2], ids[0], ids[1]):
            await layer_.group_send(
                group,
                {
                    "type": "chat.message",
                    "id": msg_id,
                    "text": json.dumps({"id": msg_id, "message": f"m{msg_id}"}),
                    "ts": 0.0,
                },
            )
        got = await c.recv_many(3)
        assert [m["id"] for m in got] == [1, 2, 3]
        assert [m["message"] for m in got] == ["m1", "m2", "m3"]
        assert await c.nothing()


async def test_every_accepted_message_is_stored_before_broadcast(layer):
    """What a receiver sees is already in the database, with the same id and text."""
    async with Client("stored") as a, Client("stored") as b:
        for text in ("one", "two", "<b>three</b>"):
            await a.send(text)
            frame = await b.recv()
            row = await Message.objects.aget(room__name="stored", seq=frame["id"])
            assert row.text == text == frame["message"]
            await a.recv()


async def test_redis_down_at_connect_closes_4503(settings_override):
    """No channel layer: the client is told 4503 (retry later) instead of a failed handshake."""
    from tests.servers import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings_override(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": dead}]},
            }
        },
        REDIS_SHARDS=shards_at(dead),
    )
    async with Client("lobby") as c:
        assert await c.closed(timeout=10) == (4503, "service unavailable")


async def test_redis_lost_mid_chat_loses_nothing(settings_override):
    """Redis dies after connect: the sender is told the broadcast is delayed, the message is
    stored, and a peer receives it through its resume once Redis is back."""
    from tests.servers import redis_server

    with redis_server() as url:
        settings_override(
            CHANNEL_LAYERS={
                "default": {
                    "BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [{"address": url}]},
                }
            },
            REDIS_SHARDS=shards_at(url),
        )
        a = await Client("outage").__aenter__()
    # redis-server is stopped here.
    await a.send("during outage")
    own, error = await a.recv(timeout=10), await a.recv(timeout=10)
    assert own["message"] == "during outage"
    assert error["code"] == "broadcast_delayed" and error["id"] == own["id"]
    assert await Message.objects.filter(room__name="outage", text="during outage").aexists()
    await a.comm.disconnect()
    settings_override(
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    )
    async with Client("outage", f"after={own['id'] - 1}") as later:
        assert (await later.recv())["message"] == "during outage"


def test_limits_come_from_settings():
    assert settings.CHAT["MAX_MESSAGE_CHARS"] == 2000
    assert settings.CHAT["MAX_ROOM_CHARS"] >= 200


async def test_database_down_refuses_sends_clearly_then_recovers(postgres):
    """Postgres stopped: a send gets `unavailable` (not stored, not broadcast), a new socket is
    closed 4503; once Postgres is back the same socket sends again."""
    async with Client("pg") as a, Client("pg") as b:
        await asyncio.to_thread(postgres.stop)
        try:
            await a.send("lost?")
            error = await a.recv(timeout=15)
            assert error["code"] == "unavailable"
            assert await b.nothing()
            async with Client("pg2") as c:
                assert await c.closed(timeout=15) == (4503, "service unavailable")
        finally:
            await asyncio.to_thread(postgres.start)
        await a.send("after restart")
        assert (await b.recv(timeout=15))["message"] == "after restart"
