"""Which Redis the channel layer uses: one URL, several shards, or Sentinel groups.

Exactly one of three variables names it:
  REDIS_URL        one Redis (redis://:password@host:6379/0)
  REDIS_URLS       several independent Redis, comma separated: one shard each
  REDIS_SENTINELS  Sentinels (host:port, comma separated) watching REDIS_MASTER_NAME, a comma
                   list of master names: one shard each (default: one master, "chat"), with
                   REDIS_PASSWORD for the data nodes and REDIS_SENTINEL_PASSWORD (default: the same)
                   for the Sentinels.
channels_redis hashes every room's group name over the shards (crc32), so a room lives on one
shard and losing a shard delays only its rooms. Mistakes stop the process at boot here (shapes,
duplicates); chat.management.commands.check_redis asks the servers themselves at start.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chatsite.env import SettingError

SENTINEL_PORT = 26379
URL_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Shard:
    """One shard of the channel layer: a Redis URL, or a master that Sentinels watch."""

    url: str | None = None
    master_name: str | None = None
    sentinels: tuple = ()  # ((host, port), ...)
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def label(self):
        """How messages and /readyz name this shard: never with its password."""
        if self.master_name is not None:
            return f"sentinel:{self.master_name}"
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"

    def channels_host(self, **options):
        """This shard as an entry of channels_redis' `hosts` (options: socket/pool settings)."""
        if self.master_name is None:
            return {"address": self.url, **options}
        timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
        return {
            "sentinels": list(self.sentinels),
            "master_name": self.master_name,
            "sentinel_kwargs": {"password": self.sentinel_password, **timeouts},
            "password": self.password,
            **options,
        }

    def client(self, timeout):
        """A synchronous redis-py client of the shard's current primary (probes, checks)."""
        import redis.sentinel

        import redis

        if self.master_name is None:
            return redis.Redis.from_url(
                self.url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        return self.sentinel_manager(timeout).master_for(
            self.master_name,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )

    def sentinel_manager(self, timeout):
        import redis.sentinel

        return redis.sentinel.Sentinel(
            list(self.sentinels),
            sentinel_kwargs={
                "password": self.sentinel_password,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            },
        )


def _mask(url):
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _distinct(name, items, key=lambda item: item, show=lambda item: item):
    seen = {}
    for item in items:
        k = key(item)
        if k in seen:
            raise SettingError(f"expected distinct shards in {name}, found {show(item)} twice")
        seen[k] = item


def _url_shards(name, urls):
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in URL_SCHEMES or not (parts.hostname or parts.path):
            raise SettingError(
                f"expected {name} to hold redis:// URLs, found {_mask(url)!r}"
                + (" (REDIS_URLS is comma separated)" if "," in url else "")
            )
    _distinct(
        name,
        urls,
        key=lambda u: (urlsplit(u).hostname, urlsplit(u).port or 6379, urlsplit(u).path or "/0"),
        show=lambda u: repr(_mask(u)),
    )
    return [Shard(url=url) for url in urls]


def _address(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(SENTINEL_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingError(f"expected REDIS_SENTINELS entries as host:port, found {text!r}")
    return host.strip("[]"), int(port)


def from_env(env, production):
    """The shards the settings name (a list), or None for the in-memory layer (development)."""
    chosen = [n for n in ("REDIS_URL", "REDIS_URLS", "REDIS_SENTINELS") if env.str(n, None)]
    if len(chosen) > 1:
        raise SettingError(
            "expected one of REDIS_URL, REDIS_URLS or REDIS_SENTINELS, found "
            + " and ".join(chosen)
        )
    if not chosen:
        if production:
            raise SettingError(
                "REDIS_URL is required and has no default in production "
                "(or REDIS_URLS for shards, REDIS_SENTINELS for Sentinel)"
            )
        return None
    if chosen == ["REDIS_URL"]:
        return _url_shards("REDIS_URL", [env.setting("REDIS_URL", production)])
    if chosen == ["REDIS_URLS"]:
        return _url_shards("REDIS_URLS", env.setting("REDIS_URLS", production))
    sentinels = tuple(_address(a) for a in env.setting("REDIS_SENTINELS", production))
    _distinct("REDIS_SENTINELS", sentinels, show=lambda a: f"'{a[0]}:{a[1]}'")
    names = env.setting("REDIS_MASTER_NAME", production)
    if not names:
        raise SettingError("expected REDIS_MASTER_NAME to name a master, found nothing")
    _distinct("REDIS_MASTER_NAME", names, show=lambda n: repr(n))
    password = env.setting("REDIS_PASSWORD", production)
    sentinel_password = env.setting("REDIS_SENTINEL_PASSWORD", production)  # default: password
    return [
        Shard(
            master_name=name,
            sentinels=sentinels,
            password=password,
            sentinel_password=sentinel_password,
        )
        for name in names
    ]
