"""The chat's WebSocket consumer: validate, store, broadcast once, deliver in order exactly once."""

import asyncio
import contextlib
import logging
import math
import time
from urllib.parse import parse_qs

import orjson
import redis.exceptions
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from chat import lifecycle, metrics, protocol, rooms, store
from chat.ratelimit import ADDRESSES, TokenBucket, take_all
from chat.runtime.channels import LeanConsumerLoop

logger = logging.getLogger("chat.ws")

room_last_id = database_sync_to_async(store.room_last_id)
append_message = database_sync_to_async(store.append)
messages_after = database_sync_to_async(store.after)

# Consumers of this process, so a draining server can tell each of them to close (chat.lifecycle).
OPEN = set()


class ChatConsumer(LeanConsumerLoop, AsyncJsonWebsocketConsumer):
    """`/ws/chat/<room>/`: the tutorial's protocol plus ids, resume, and documented errors."""

    room = None
    group = None
    last_id = 0  # the newest message id this client has been sent; nothing older is sent again
    received_at = None  # when the frame being handled arrived (monotonic), if the server says
    closing = False  # the server began closing, or the client is gone: nothing more is sent

    # __call__ assigns `channel_receive` (the layer's receive for our channel); an error from it
    # would end the consumer: a Redis restart would then kill every socket with 1011. Wrapped,
    # the consumer waits for Redis instead, and rejoins its group (the core layer keeps groups in
    # Redis, so a restarted Redis has forgotten them).
    @property
    def channel_receive(self):
        return self._channel_receive

    @channel_receive.setter
    def channel_receive(self, receive):
        async def patient_receive():
            delay, lost = 0.1, False
            while True:
                try:
                    if lost and self.group:
                        await self.channel_layer.group_add(self.group, self.channel_name)
                        logger.info("channel layer back; group rejoined", extra={"room": self.room})
                    return await receive()
                except (OSError, redis.exceptions.ConnectionError) as exc:
                    if not lost:
                        logger.warning("channel layer lost", extra=_why(exc, room=self.room))
                    lost = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)

        self._channel_receive = patient_receive

    # -- connection -------------------------------------------------------------------------

    async def connect(self):
        self.client = _client(self.scope)
        name = self.scope["url_route"]["kwargs"]["room_name"]
        try:
            rooms.validate(name)
            after, history = _resume_query(self.scope)
        except rooms.InvalidRoom as exc:
            return await self.close_with(protocol.CLOSE_INVALID_ROOM, str(exc), room=name[:200])
        except ValueError as exc:
            return await self.close_with(protocol.CLOSE_INVALID_RESUME, str(exc), room=name)
        if lifecycle.draining:
            return await self.close_with(protocol.CLOSE_SERVICE_RESTART, "draining", room=name)

        group = rooms.group_name(name)
        try:
            # Join before reading the database: anything stored from here on reaches us live, and
            # anything stored before is in the catch-up; the overlap is dropped by id.
            await self.channel_layer.group_add(group, self.channel_name)
            newest = await room_last_id(name)
        except Exception as exc:  # noqa: BLE001 - Redis or the database is down: say so, retry later
            logger.warning("dependency unavailable at connect", extra=_why(exc, room=name))
            await self._leave(group)
            return await self.close_with(
                protocol.CLOSE_UNAVAILABLE, "service unavailable", room=name
            )

        # Accepted only once joined: a client that sees the socket open receives every broadcast.
        await self.accept()
        self.room, self.group = name, group
        self.bucket = TokenBucket(settings.CHAT["RATE_PER_SECOND"], settings.CHAT["RATE_BURST"])
        # The client's address as nginx saw it (X-Forwarded-For, which nginx sets to it): all
        # of its sockets in this process share one budget too (chat.ratelimit).
        self.address = (self.scope.get("client") or ("?",))[0]
        self.address_bucket = ADDRESSES.acquire(self.address)
        self.rate_strikes = 0
        OPEN.add(self)
        metrics.CONNECTIONS.inc()
        logger.info("connect", extra={"event": "connect", "room": name, "client": self.client})

        if after is not None:
            self.last_id = min(after, newest)  # an id from the future (restored backup) is clamped
            await self.send_stored(newest)
        else:
            self.last_id = max(0, newest - history)
            await self.send_stored(newest)

    async def __call__(self, scope, receive, send):
        """The consumer's run (chat.runtime.channels: one receive loop per source, or Channels'
        own with WS_RUNTIME_OVERRIDES=none), forgetting the connection however it ends."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Daphne cancels an instance whose client left while it was busy (after
            # application_close_timeout); disconnect() never runs then, and the gauge and OPEN
            # (which a drain waits on) would keep a ghost for good.
            self._forget()

    def _forget(self):
        """Stop counting this connection as open; safe to call twice."""
        if self in OPEN:
            OPEN.discard(self)
            ADDRESSES.release(self.address)
            metrics.CONNECTIONS.dec()

    async def disconnect(self, code):
        if self.room is None:
            return
        self._forget()
        await self._leave(self.group)
        logger.info(
            "disconnect",
            extra={"event": "disconnect", "room": self.room, "code": code, "client": self.client},
        )

    async def _leave(self, group):
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except Exception as exc:  # noqa: BLE001 - leaving a group on a dead Redis is moot
            logger.info("group_discard failed", extra=_why(exc, room=self.room))

    async def close_with(self, code, reason, **fields):
        """Close with an application code and a reason the client can read.

        A refused handshake is accepted first: a browser cannot see why a handshake failed, but
        it does see a close code."""
        if self.closing:
            return
        if self.room is None:
            await self.accept()
        metrics.CLOSES.labels(code=str(code)).inc()
        logger.info("close", extra={"event": "close", "code": code, "reason": reason, **fields})
        # Daphne drops close reasons, so the reason also travels in a last frame before the close.
        await self.deliver(protocol.dumps({"type": "close", "code": code, "detail": reason}))
        self.closing = True
        with contextlib.suppress(Disconnected):
            await self.close(code=code, reason=reason[:120])  # a reason is capped at 123 bytes

    async def deliver(self, text):
        """Send one frame unless the socket is closing or gone; False when it was not sent.

        A broadcast can reach us after we closed the socket or after the client left (its
        disconnect is still queued behind the broadcast); Daphne then raises Disconnected, which
        would end the consumer without disconnect() and leak its gauge and group membership.
        """
        if self.closing:
            return False
        try:
            await self.send(text_data=text)
        except Disconnected:
            self.closing = True
            return False
        return True

    # -- receiving --------------------------------------------------------------------------

    async def websocket_receive(self, message):
        # runws stamps each frame on arrival; the rate limit is charged at that time.
        self.received_at = message.get("received_at")
        await super().websocket_receive(message)

    async def receive(self, text_data=None, bytes_data=None):
        if self.room is None:  # closing: the handshake was refused
            return
        try:
            await self._receive(text_data)
        except Exception:
            # A bug, not bad input (that is handled below): log it, close with our own code
            # instead of Daphne's 1011, and leave every other connection alone.
            logger.exception("unexpected error", extra={"event": "error", "room": self.room})
            await self.close_with(protocol.CLOSE_INTERNAL, "internal error", room=self.room)

    async def _receive(self, text):
        wait = take_all((self.bucket, self.address_bucket), now=self.received_at)
        if wait:
            self.rate_strikes += 1
            if self.rate_strikes > settings.CHAT["RATE_BURST"]:
                metrics.REJECTED.labels(reason="rate_limited").inc()
                return await self.close_with(
                    protocol.CLOSE_RATE_LIMIT, "rate limit exceeded", room=self.room
                )
            # Rounded up: a client that waits `retry_after` is never still limited.
            return await self.reject(
                "rate_limited", retry_after=math.ceil(wait * 100) / 100, **_echo_of(text)
            )
        self.rate_strikes = 0

        if text is None:
            return await self.reject("binary_frame")
        limit = settings.CHAT["MAX_FRAME_BYTES"]
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            return await self.reject("frame_too_large", max_frame_bytes=limit)
        try:
            content = protocol.loads(text)
        except orjson.JSONDecodeError:
            return await self.reject("invalid_json")
        if not isinstance(content, dict):
            return await self.reject("not_an_object")
        client_id = content.get("client_id")
        if client_id is not None and not protocol.valid_client_id(client_id):
            return await self.reject("invalid_client_id")
        echo = _echo(client_id)  # a refusal says which message it refuses
        if "message" not in content:
            return await self.reject("missing_message", **echo)
        message = content["message"]
        if not isinstance(message, str):
            return await self.reject("message_not_string", **echo)
        if not message.strip():
            return await self.reject("empty_message", **echo)
        max_chars = settings.CHAT["MAX_MESSAGE_CHARS"]
        if len(message) > max_chars:
            return await self.reject(
                "message_too_long", length=len(message), max_chars=max_chars, **echo
            )

        # Shielded: once stored, the broadcast happens even if this consumer is cancelled now
        # (client gone, server stopping); otherwise others would see the message only with the
        # next one or a reconnect (docs/RELIABILITY.md, F8).
        await asyncio.shield(self._store_and_broadcast(message, client_id))

    async def _store_and_broadcast(self, message, client_id):
        try:
            msg_id, sent_at, stored_before = await append_message(self.room, message, client_id)
        except DatabaseError as exc:
            logger.warning("database unavailable on send", extra=_why(exc, room=self.room))
            return await self.reject("unavailable", **_echo(client_id))
        if stored_before:
            # A resend (the client did not see its message before a reconnect); the room has it,
            # and this socket got it in its catch-up or will get it live.
            return await self.deliver(protocol.ack(msg_id, client_id))
        metrics.ACCEPTED.inc()
        frame = protocol.message(self.room, msg_id, message, sent_at, client_id)
        # Encoded once here; every receiver sends these bytes as they are.
        event = {"type": "chat.message", "id": msg_id, "text": frame, "ts": sent_at.timestamp()}
        try:
            with metrics.LAYER_SEND.time():
                await self.channel_layer.group_send(self.group, event)
        except Exception as exc:  # noqa: BLE001 - stored already: nothing is lost, only delayed
            logger.warning("channel layer unavailable on send", extra=_why(exc, room=self.room))
            await self.chat_message(event)  # the sender still sees its own message
            await self.reject("broadcast_delayed", id=msg_id)

    async def reject(self, code, **fields):
        metrics.REJECTED.labels(reason=code).inc()
        logger.info("reject", extra={"event": "reject", "room": self.room, "reason": code})
        await self.deliver(protocol.error(code, **fields))

    # -- delivering -------------------------------------------------------------------------

    async def chat_message(self, event):
        """A broadcast from the room: deliver each id once, in order, filling gaps from the db."""
        msg_id = event["id"]
        if msg_id <= self.last_id:
            return  # already sent (catch-up overlap, or a duplicate)
        if msg_id > self.last_id + 1:
            # Broadcasts of two senders can cross; the missing ids are already committed.
            if not await self.send_stored(msg_id - 1):
                return
        if not await self.deliver(event["text"]):
            return
        self.last_id = msg_id
        metrics.DELIVERIES.inc()
        metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - event["ts"]))

    async def send_stored(self, upto):
        """Send stored messages with last_id < id <= upto. False (and closed) if the db is down."""
        batch_size = settings.CHAT["RESUME_BATCH"]
        while self.last_id < upto:
            try:
                rows = await messages_after(self.room, self.last_id, batch_size, upto)
            except DatabaseError as exc:
                # The client knows its last id; a reconnect resumes from it once the db is back.
                logger.warning("database unavailable on catch-up", extra=_why(exc, room=self.room))
                await self.close_with(protocol.CLOSE_UNAVAILABLE, "service unavailable")
                return False
            if not rows:
                break
            for msg_id, text, sent_at, client_id in rows:
                frame = protocol.message(self.room, msg_id, text, sent_at, client_id)
                if not await self.deliver(frame):
                    return False
                metrics.DELIVERIES.inc()
            self.last_id = rows[-1][0]
            await self._wait_for_reader()
        return True

    async def _wait_for_reader(self):
        """Hold a catch-up while the client has not read half of WS_MAX_PENDING_BYTES.

        Without it a catch-up writes batch after batch into the worker's memory until the
        slow-reader check (once a second) drops the client (docs/RELIABILITY.md, F10). A client
        that stays above half the bound is dropped by that check after WS_SLOW_READER_SECONDS.
        """
        pending = self.scope.get("chat.pending_bytes")  # set by runws; absent under other servers
        if pending is None:
            return
        limit = settings.WS_SERVER["MAX_PENDING_BYTES"] // 2
        while not self.closing and pending() > limit:
            # Polled: 10 ms lets a fast reader take half a megabyte per poll (~50 MB/s); only
            # consumers in a catch-up ever wait here.
            await asyncio.sleep(0.01)

    async def chat_resync(self, event):
        """The channel layer's subscriber reconnected (Redis restart, Sentinel failover): what
        was broadcast meanwhile never arrived. Catch up from the database now, instead of with
        the room's next message (which a quiet room may not have for a long time)."""
        if self.room is None or self.closing:
            return
        try:
            newest = await _room_newest(self.room)
        except DatabaseError as exc:
            logger.warning("database unavailable on resync", extra=_why(exc, room=self.room))
            return  # the next message or a reconnect fills the gap
        if newest > self.last_id:
            await self.send_stored(newest)

    async def chat_drain(self, event):
        """This process is shutting down: ask the client to reconnect (to another replica)."""
        await self.close_with(protocol.CLOSE_SERVICE_RESTART, "server restarting", room=self.room)


_NEWEST = {}  # room -> the task reading its newest id, shared by a resync's consumers


async def _room_newest(room):
    """The room's newest id; consumers of one room resyncing together share one query."""
    task = _NEWEST.get(room)
    if task is None:
        task = asyncio.ensure_future(room_last_id(room))
        _NEWEST[room] = task
        task.add_done_callback(lambda _: _NEWEST.pop(room, None))
    return await asyncio.shield(task)


def _resume_query(scope):
    """(after, history) from the query string; ValueError names what is wrong."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = {}
    for key, default in (("after", None), ("history", 0)):
        raw = query.get(key, [None])[-1]
        if raw is None or raw == "":
            values[key] = default
            continue
        if not raw.isdigit() or len(raw) > 18:
            raise ValueError(f"{key} must be a non-negative integer, found {raw[:20]!r}")
        values[key] = int(raw)
    history = min(values["history"], settings.CHAT["HISTORY_ON_JOIN"])
    return values["after"], history


def _echo(client_id):
    """The fields an error frame adds to name the refused message: its client_id, if any."""
    return {} if client_id is None else {"client_id": client_id}


def _echo_of(text):
    """_echo() of a frame not parsed yet (refused before parsing): best effort."""
    if not text or len(text) > settings.CHAT["MAX_FRAME_BYTES"]:
        return {}
    try:
        client_id = protocol.loads(text).get("client_id")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return _echo(client_id) if protocol.valid_client_id(client_id) else {}


def _client(scope):
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"


def _why(exc, **fields):
    return {"event": "dependency_error", "error": f"{type(exc).__name__}: {exc}"[:300], **fields}


class NotFoundConsumer(ChatConsumer):
    """Any other WebSocket path: a clear close code, not a failed handshake and a traceback."""

    async def connect(self):
        self.client = _client(self.scope)
        await self.close_with(protocol.CLOSE_NOT_FOUND, "no such WebSocket endpoint")
