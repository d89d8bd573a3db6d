"""settings.REDIS_SHARDS for tests that point the service at one Redis."""

from chatsite.redis_shards import Shard


def shards_at(url):
    """One shard at `url`; None (no Redis: the in-memory layer) for None."""
    return None if url is None else [Shard(url=url)]
