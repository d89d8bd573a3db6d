"""channels_redis overrides (written against channels_redis 4.3.0 and redis-py 8.1.0): the pub/sub
channel layer the chat runs (settings.py: `chat.layers.ChatPubSubChannelLayer`).

channels_redis.lean_channels
    Replaces: `RedisPubSubLoopLayer.new_channel` / `_subscribe_to_channel` / `send`.
    Stock channels_redis SUBSCRIBEs every consumer's channel in Redis (a round trip at connect,
    an entry in redis-py's PubSub and in Redis per socket) and gives it an asyncio.Queue (three
    deques and an Event, ~760 bytes each even when empty). Here a consumer channel is
    `<prefix>specific.<loop token>!<id>` with a LeanQueue; each loop layer SUBSCRIBEs one inbox,
    `<prefix>specific.<loop token>!`, once. A send to a channel of this loop is put in its queue
    directly; a send to a channel of another process or event loop is PUBLISHed to that
    channel's inbox with the channel's name in front (`<name>\\n<message>`), and the receiving
    loop layer puts it in the channel's queue. No send is dropped: what stock channels_redis
    delivers, this delivers (channels_redis' own test_pubsub.py passes against it, in the
    upstream tier). The inbox routing of `send()` and its demultiplexing are always on (they are
    the product layer's wire format), so processes with this override on and off interoperate.
    Saves: a SUBSCRIBE per connect, and part of 36 -> 18.7 KB per idle WebSocket
    (docs/PERFORMANCE.md, "What was tuned"; `python bench/run.py idlecost`).
    Off: stock channel names, asyncio.Queue and a SUBSCRIBE per consumer channel.

channels_redis.shard_hash
    Replaces: `RedisPubSubLoopLayer._get_shard` (crc32 bits 11 and up, modulo the shard count):
    crc32 is linear, so room names differing in one character (room-1 ... room-8) measured all
    on one of two shards. Here: blake2b of the name, modulo the shard count.
    Saves: an even spread of rooms over Redis shards (test_redis_ha.py).
    Off: stock hashing. Every process must hash alike: with more than one shard, switch it on
    every ws process at once (a rolling change splits each room's subscribers across shards
    while it lasts).

channels_redis.resync
    Replaces: `RedisSingleShardConnection._ensure_redis` (its `_redis` and `_pubsub`) with a
    redis-py `PubSub` whose `on_connect` calls the layer back after a reconnect: every local
    consumer of a group on that shard gets `chat.resync` and catches up from the database.
    Broadcasts published while the subscriber was away (a Redis restart, a Sentinel failover)
    never arrive; without this a reader sees them only with the room's next message.
    Saves: a quiet room's missed messages arrive within a reconnect, not with the next message
    (test_redis_ha.py, the Sentinel failover test).
    Off: stock; missed broadcasts arrive with the room's next message or a reconnect.

Always (the product layer's own class, whatever the switch): `RedisPubSubChannelLayer._get_layer`
is copied (it names the loop layer class) so each event loop gets a `ChatLoopLayer`.
"""

import asyncio
import contextlib
import hashlib
import uuid

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
    _wrap_close,
)
from redis.asyncio.client import PubSub

from chat.queues import LeanQueue
from chat.runtime import Hook, Override, enabled

# Put into the channel of every consumer whose group lives on a shard whose subscriber
# connection came back (chat.consumers.ChatConsumer.chat_resync).
RESYNC = {"type": "chat.resync"}

_SEP = b"\n"  # never in a channel name (channels' own name check forbids it)


def inbox_of(channel):
    """The inbox a channel's messages are PUBLISHed to, or None for a stock channel name."""
    bang = channel.find("!")
    return channel[: bang + 1] if bang > 0 else None


class ChatShard(RedisSingleShardConnection):
    """One shard's connection: delivers inbox messages, and (channels_redis.resync) tells the
    consumers of its groups when it reconnected."""

    def _ensure_redis(self):
        if not enabled("channels_redis.resync"):
            return super()._ensure_redis()
        if self._redis is None:
            super()._ensure_redis()
            self._pubsub = ResyncingPubSub(
                self._redis.connection_pool,
                event_dispatcher=self._redis._event_dispatcher,
                shard=self,
            )

    def _receive_message(self, message):
        if message is not None:
            name = message["channel"]
            if isinstance(name, bytes):
                name = name.decode()
            if name.endswith("!"):
                channel, sep, data = message["data"].partition(_SEP)
                queue = self.channel_layer.channels.get(channel.decode()) if sep else None
                if queue is not None:
                    queue.put_nowait(data)
                return  # a channel closed meanwhile: its messages go with it, as in stock
        super()._receive_message(message)


class ResyncingPubSub(PubSub):
    """redis-py's PubSub calling its shard's layer back after it subscribed again."""

    def __init__(self, *args, shard, **kwargs):
        super().__init__(*args, **kwargs)
        self.shard = shard

    # redis-py registers this after its first connect: it runs on every reconnect only.
    async def on_connect(self, connection):
        await super().on_connect(connection)
        self.shard.channel_layer.resync(self.shard)


class ChatLoopLayer(RedisPubSubLoopLayer):
    """One event loop's layer (see the module's header for each override)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [ChatShard(shard.host, self) for shard in self._shards]
        self.token = uuid.uuid4().hex

    def resync(self, shard):
        """Queue RESYNC for every local consumer in a group that `shard` carries."""
        event = self.channel_layer.serialize(RESYNC)
        for group_channel, members in self.groups.items():
            if self._get_shard(group_channel) is shard:
                for channel in members:
                    queue = self.channels.get(channel)
                    if queue is not None:
                        queue.put_nowait(event)

    def _get_shard(self, channel_or_group_name):
        """The shard of a name: blake2b of the name, modulo the number of shards.

        Every process must agree, so this depends on the name and the shard count only.
        """
        if len(self._shards) == 1:
            return self._shards[0]
        if not enabled("channels_redis.shard_hash"):
            return super()._get_shard(channel_or_group_name)
        digest = hashlib.blake2b(channel_or_group_name.encode(), digest_size=8).digest()
        return self._shards[int.from_bytes(digest, "big") % len(self._shards)]

    async def _subscribe_to_channel(self, channel):
        if not enabled("channels_redis.lean_channels"):
            return await super()._subscribe_to_channel(channel)
        self.channels[channel] = LeanQueue()
        inbox = inbox_of(channel)
        if inbox is not None:
            await self._subscribe_inbox(inbox)
        else:  # a name not made by new_channel(): as stock
            await self._get_shard(channel).subscribe(channel)

    async def _subscribe_inbox(self, inbox):
        shard = self._get_shard(inbox)
        if inbox not in shard._subscribed_to:
            await shard.subscribe(inbox)

    async def new_channel(self, prefix="specific."):
        if not enabled("channels_redis.lean_channels"):
            return await super().new_channel(prefix)
        inbox = f"{self.prefix}{prefix}{self.token}!"
        channel = f"{inbox}{uuid.uuid4().hex}"
        self.channels[channel] = LeanQueue()
        # Redis down: the channel is made anyway (the consumer then closes with its own code);
        # group_add() subscribes the inbox again and fails loudly.
        with contextlib.suppress(Exception):
            await self._subscribe_inbox(inbox)
        return channel

    async def group_add(self, group, channel):
        inbox = inbox_of(channel)
        if inbox is not None and channel in self.channels:
            await self._subscribe_inbox(inbox)  # no-op once subscribed
        await super().group_add(group, channel)

    async def send(self, channel, message):
        queue = self.channels.get(channel)
        if queue is not None:  # this loop's channel: no Redis round trip
            queue.put_nowait(self.channel_layer.serialize(message))
            return
        inbox = inbox_of(channel)
        if inbox is None:
            return await super().send(channel, message)
        payload = channel.encode() + _SEP + self.channel_layer.serialize(message)
        await self._get_shard(inbox).publish(inbox, payload)


class ChatPubSubChannelLayer(RedisPubSubChannelLayer):
    """channels_redis' RedisPubSubChannelLayer building a ChatLoopLayer per event loop."""

    def _get_layer(self):
        # --- copied from channels_redis 4.3.0 pubsub.py RedisPubSubChannelLayer._get_layer,
        # the loop layer class changed
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = ChatLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer


_LOOP = "channels_redis.pubsub:RedisPubSubLoopLayer"
_SHARD = "channels_redis.pubsub:RedisSingleShardConnection"

OVERRIDES = (
    Override(
        name="channels_redis.lean_channels",
        library="channels_redis",
        replaces="RedisPubSubLoopLayer.new_channel/_subscribe_to_channel/send",
        saves="a SUBSCRIBE per connect; an asyncio.Queue per socket (docs/PERFORMANCE.md)",
        hooks=(
            Hook(f"{_LOOP}.new_channel", ("self", "prefix"), "bf1469b4d6819726"),
            Hook(f"{_LOOP}._subscribe_to_channel", ("self", "channel"), "3da2e955db06450f"),
            Hook(f"{_LOOP}.send", ("self", "channel", "message"), "549a0535395c584a"),
            Hook(f"{_LOOP}.receive", ("self", "channel"), contains=("await q.get()",)),
            Hook(f"{_LOOP}.group_add", ("self", "group", "channel")),
            Hook(_LOOP, attrs=("channels", "groups", "prefix", "_shards", "channel_layer")),
            Hook(f"{_SHARD}.subscribe", ("self", "channel")),
            Hook(f"{_SHARD}.publish", ("self", "channel", "message")),
            Hook(_SHARD, attrs=("_subscribed_to",)),
        ),
    ),
    Override(
        name="channels_redis.shard_hash",
        library="channels_redis",
        replaces="RedisPubSubLoopLayer._get_shard",
        saves="rooms spread evenly over shards (crc32 put room-1..room-8 on one of two)",
        hooks=(Hook(f"{_LOOP}._get_shard", ("self", "channel_or_group_name"), "9c655ee12ccbc91e"),),
    ),
    Override(
        name="channels_redis.resync",
        library="channels_redis",
        replaces="RedisSingleShardConnection._ensure_redis (its _redis and _pubsub)",
        saves="missed broadcasts after a Redis reconnect arrive at once (test_redis_ha.py)",
        hooks=(
            Hook(f"{_SHARD}._ensure_redis", ("self",), "ba228d3cee7116dc"),
            Hook(_SHARD, attrs=("_redis", "_pubsub", "channel_layer")),
            Hook("redis.asyncio.client:PubSub.__init__", contains=("event_dispatcher",)),
            Hook("redis.asyncio.client:PubSub.on_connect", ("self", "connection")),
            Hook(
                "redis.asyncio.client:PubSub",
                contains=("register_connect_callback(self.on_connect)",),
            ),
            Hook("redis.asyncio.client:Redis", attrs=("_event_dispatcher", "connection_pool")),
        ),
    ),
)

ALWAYS = (
    Hook(
        "channels_redis.pubsub:RedisPubSubChannelLayer._get_layer",
        ("self",),
        "1862b87a25ac72b2",
    ),
    Hook("channels_redis.pubsub:_wrap_close", ("proxy", "loop")),
    Hook(f"{_SHARD}._receive_message", ("self", "message"), "2f5f46af28e8ed76"),
    Hook(f"{_SHARD}.__init__", ("self", "host", "channel_layer")),
)
