"""What the consumer does when its own timing goes wrong: frames that queued while it was blocked,
a consumer cancelled between storing and broadcasting, and a client that reads a catch-up slowly.
"""

import asyncio
import contextlib
import json
import time

import pytest
from django.conf import settings

from chat import consumers, store

from .wsclient import Client

pytestmark = pytest.mark.timeout(60)


def frame(message, received_at=None):
    event = {"type": "websocket.receive", "text": json.dumps({"message": message})}
    if received_at is not None:
        event["received_at"] = received_at  # runws stamps every frame on arrival
    return event


async def test_frames_that_waited_are_charged_when_they_arrived(chat_limits):
    """Frames that arrived at 5/s while the consumer was blocked (e.g. a paused Redis) are all
    accepted when it catches up, although they are handled in one burst: the rate limit is
    charged at arrival (RELIABILITY F11). Unstamped, the same burst would be refused."""
    chat_limits(RATE_PER_SECOND=10.0, RATE_BURST=5)
    async with Client("arrival") as c:
        start = time.monotonic()
        for i in range(20):  # 20 frames at 5/s over 4 s, all handled in one burst
            await c.comm.send_input(frame(f"m{i}", received_at=start + i * 0.2))
        got = await c.recv_many(20)
        assert [g.get("message") for g in got] == [f"m{i}" for i in range(20)]
        assert all(g["type"] == "message" for g in got)

    async with Client("arrival-burst") as c:
        for i in range(20):
            await c.comm.send_input(frame(f"m{i}"))  # no stamp: charged when handled
        assert (await c.closed())[0] == 4429  # refused, then closed for flooding


async def test_a_message_stored_is_broadcast_even_if_its_sender_is_cancelled(monkeypatch):
    """Daphne cancels a sender's consumer (client gone, server stopping) after its message was
    stored but before the broadcast: the others still receive it now, not with the next message
    (RELIABILITY F8)."""
    stored = asyncio.Event()
    original = consumers.append_message

    async def slow_append(*args):
        result = await original(*args)
        stored.set()
        await asyncio.sleep(0.3)  # the window between commit and publish, made wide
        return result

    monkeypatch.setattr(consumers, "append_message", slow_append)
    async with Client("shield") as other:
        sender = Client("shield")
        await sender.__aenter__()
        await sender.send("last words")
        await asyncio.wait_for(stored.wait(), 5)
        sender.comm.future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender.comm.future
        got = await other.recv(timeout=3)
        assert (got["id"], got["message"]) == (1, "last words")


async def test_catch_up_waits_for_a_client_that_has_not_read(chat_limits):
    """A resume over a long backlog writes one batch, then waits while the socket holds more than
    half of WS_MAX_PENDING_BYTES unsent, instead of buffering the whole backlog in the worker
    (RELIABILITY F10); once the client reads, the rest follows, in order, once each."""
    chat_limits(RESUME_BATCH=10)
    for i in range(35):
        await asyncio.to_thread(store.append, "backlog", f"m{i}")
    unsent = {"bytes": settings.WS_SERVER["MAX_PENDING_BYTES"]}  # the client is not reading

    client = Client("backlog", query="after=0")
    client.comm.scope["chat.pending_bytes"] = lambda: unsent["bytes"]  # as runws provides it
    async with client:
        first = await client.recv_many(10)
        assert await client.nothing(0.5), "expected the catch-up to wait after one batch"
        unsent["bytes"] = 0  # the client read everything
        rest = await client.recv_many(25)
        assert [m["id"] for m in first + rest] == list(range(1, 36))
        assert await client.nothing()


def with_id(message, client_id):
    return {"type": "websocket.receive", "text": json.dumps({"message": message, **client_id})}


async def test_a_resent_message_is_stored_once(layer):
    """A client that did not see its own message before a reconnect sends it again with the same
    client_id: the room stores it once; the repeat gets an `ack` naming the stored id, and the
    others see it once. The client_id travels with the message, live and in a catch-up, so the
    sender can tell which of its messages arrived (RELIABILITY F7)."""
    async with Client("once") as sender, Client("once") as other:
        await sender.comm.send_input(with_id("hello", {"client_id": "c-1"}))
        first = await other.recv()
        assert (first["id"], first["message"], first["client_id"]) == (1, "hello", "c-1")
        assert (await sender.recv())["client_id"] == "c-1"

    async with Client("once", query="after=0") as sender, Client("once") as other:
        assert (await sender.recv())["client_id"] == "c-1"  # the catch-up says it arrived
        await sender.comm.send_input(with_id("hello", {"client_id": "c-1"}))  # resent anyway
        assert await sender.recv() == {"type": "ack", "id": 1, "client_id": "c-1"}
        assert await other.nothing()
    assert await asyncio.to_thread(store.room_last_id, "once") == 1


@pytest.mark.parametrize("client_id", ["", "x" * 65, 7, None, ["a"], "tab\there", "é"])
async def test_an_invalid_client_id_is_refused(client_id):
    """client_id, when present, is 1-64 printable ASCII characters; anything else is refused
    with an error frame and nothing is stored."""
    async with Client("badid") as c:
        await c.comm.send_input(with_id("hello", {"client_id": client_id}))
        got = await c.recv()
        if client_id is None:  # JSON null: as if absent
            assert got["type"] == "message" and "client_id" not in got
        else:
            assert (got["type"], got["code"]) == ("error", "invalid_client_id")
            assert await asyncio.to_thread(store.room_last_id, "badid") == 0


async def test_a_rate_limited_message_is_named(chat_limits):
    """A refusal says which message it refuses, rate_limited included, so a client sends that
    one again after `retry_after` and nothing else (room.js does)."""
    chat_limits(RATE_PER_SECOND=0.01, RATE_BURST=2)
    async with Client("named") as c:
        for i, text in enumerate(["first", "second", "third", "x" * 5000]):
            await c.comm.send_input(with_id(text, {"client_id": f"c-{i}"}))
        got = await c.recv_many(4)
        accepted = [(g["type"], g["client_id"]) for g in got[:2]]
        assert accepted == [("message", "c-0"), ("message", "c-1")]
        assert [(g.get("code"), g["client_id"]) for g in got[2:]] == [
            ("rate_limited", "c-2"),
            ("rate_limited", "c-3"),
        ]
        assert got[2]["retry_after"] > 0
