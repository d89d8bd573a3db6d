"""The pub/sub channel layer, with what an idle consumer holds in it kept small."""

import asyncio
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

# Put into the channel of every consumer whose group lives on a shard whose subscriber
# connection came back (chat.consumers.ChatConsumer.chat_resync).
RESYNC = {"type": "chat.resync"}


class ResyncingShard(RedisSingleShardConnection):
    """One shard's connection that tells the consumers of its groups when it reconnected.

    Broadcasts published while the subscriber was away (a Redis restart, a Sentinel failover)
    never arrive; a reader would see them only with the room's next message. After redis-py has
    reconnected and subscribed again (PubSub.on_connect), each consumer of a group on this shard
    gets a chat.resync event and catches up from the database.
    """

    def _ensure_redis(self):
        if self._redis is None:
            super()._ensure_redis()
            self._pubsub = ResyncingPubSub(
                self._redis.connection_pool,
                event_dispatcher=self._redis._event_dispatcher,
                shard=self,
            )


class ResyncingPubSub(PubSub):
    """redis-py's PubSub calling its shard's layer back after it subscribed again."""

    def __init__(self, *args, shard, **kwargs):
        super().__init__(*args, **kwargs)
        self.shard = shard

    # redis-py registers this after its first connect: it runs on every reconnect only.
    async def on_connect(self, connection):
        await super().on_connect(connection)
        self.shard.channel_layer.resync(self.shard)


class LeanLoopLayer(RedisPubSubLoopLayer):
    """One event loop's layer: channel queues are LeanQueues, and a consumer's own channel is
    local only.

    channels_redis SUBSCRIBEs every consumer's channel in Redis so another process could send to
    it; nothing in the chat does (consumers are reached through their room's group), and the
    drain, which does send to a channel, runs in the consumer's own process: it is handed over
    here without Redis.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [ResyncingShard(shard.host, self) for shard in self._shards]

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
        """The shard of a room's group: blake2b of the name, modulo the number of shards.

        channels_redis takes bit 11 and up of a crc32 of the name; crc32 is linear, so names
        that differ in one character (room-1 ... room-8) measured all on one of two shards.
        Every process must agree, so this depends on the name and the shard count only.
        """
        if len(self._shards) == 1:
            return self._shards[0]
        digest = hashlib.blake2b(channel_or_group_name.encode(), digest_size=8).digest()
        return self._shards[int.from_bytes(digest, "big") % len(self._shards)]

    async def _subscribe_to_channel(self, channel):
        self.channels[channel] = LeanQueue()
        await self._get_shard(channel).subscribe(channel)

    async def new_channel(self, prefix="specific."):
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        self.channels[channel] = LeanQueue()
        return channel

    async def send(self, channel, message):
        queue = self.channels.get(channel)
        if queue is None:
            return await super().send(channel, message)
        queue.put_nowait(self.channel_layer.serialize(message))


class ChatPubSubChannelLayer(RedisPubSubChannelLayer):
    """channels_redis' RedisPubSubChannelLayer building a LeanLoopLayer per event loop."""

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = LeanLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer
