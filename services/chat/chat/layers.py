"""The pub/sub channel layer, with what an idle consumer holds in it kept small."""

import asyncio
import uuid

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, _wrap_close

from chat.queues import LeanQueue


class LeanLoopLayer(RedisPubSubLoopLayer):
    """One event loop's layer: channel queues are LeanQueues, and a consumer's own channel is
    local only.

    channels_redis SUBSCRIBEs every consumer's channel in Redis so another process could send to
    it; nothing in the chat does (consumers are reached through their room's group), and the
    drain, which does send to a channel, runs in the consumer's own process: it is handed over
    here without Redis.
    """

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
