"""The pub/sub channel layer the chat runs (settings.py names it here).

It is channels_redis' RedisPubSubChannelLayer with the overrides of chat/runtime/channels_redis.py
(lean consumer channels, blake2b shard hashing, resync after a reconnect), each switchable with
WS_RUNTIME_OVERRIDES.
"""

from chat.runtime.channels_redis import (  # noqa: F401 - the names settings and tests use
    RESYNC,
    ChatLoopLayer,
    ChatPubSubChannelLayer,
    ChatShard,
    ResyncingPubSub,
)
