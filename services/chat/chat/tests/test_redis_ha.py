"""The channel layer on Sentinel and on shards, against real redis-server and Sentinel processes.

The Sentinel group is started by redis/redis-ha.sh, the script compose.ha.yaml and Kubernetes
run. Failover: SIGKILL the primary under a live room; the product's layer must move its
subscriptions to the promoted replica by itself, and /readyz must follow. Shards: rooms spread
over two Redis; one shard down delays only its rooms.
"""

import asyncio
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from chat import health, runtime
from chatsite.redis_shards import Shard
from tests.servers import Redis, sentinel_group

from .wsclient import Client


def needs(override):
    """Skip where WS_RUNTIME_OVERRIDES turned `override` off: what the test shows is its gain."""
    return pytest.mark.skipif(
        not runtime.enabled(override), reason=f"runtime override {override} is off"
    )


@pytest.fixture(scope="module")
def group():
    with sentinel_group(name="chat") as g:
        yield g


def shard_of(group, name=None, sentinels=None, password=None):
    return Shard(
        master_name=name or group.name,
        sentinels=tuple(sentinels or group.sentinels),
        password=password or group.password,
        sentinel_password=password or group.password,
    )


def use(settings_override, shards):
    """Point the service at `shards` with the product's own layer, as settings.py builds it."""
    health._redis.cache_clear()
    hosts = [
        s.channels_host(socket_timeout=1.0, socket_connect_timeout=1.0, max_connections=100)
        for s in shards
    ]
    settings_override(
        REDIS_SHARDS=shards,
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "chat.layers.ChatPubSubChannelLayer",
                "CONFIG": {"hosts": hosts, "prefix": "chat"},
            }
        },
    )


def test_check_redis_accepts_the_group(group, settings_override):
    settings_override(REDIS_SHARDS=[shard_of(group)])
    call_command("check_redis", wait=0)


def test_check_redis_names_a_master_sentinel_does_not_know(group, settings_override):
    settings_override(REDIS_SHARDS=[shard_of(group, name="chta")])
    with pytest.raises(CommandError) as error:
        call_command("check_redis", wait=0)
    assert "to know the master 'chta' (REDIS_MASTER_NAME), found it knows only: chat" in str(
        error.value
    )


def test_check_redis_names_a_sentinel_that_does_not_resolve(group, settings_override):
    """A typo among the Sentinels: it does not resolve and the others do not know it."""
    typo = [*group.sentinels[:2], ("redis-sentinl-3.invalid", 26379)]
    settings_override(REDIS_SHARDS=[shard_of(group, sentinels=typo)])
    with pytest.raises(CommandError) as error:
        call_command("check_redis", wait=0)
    message = str(error.value)
    assert message.startswith("expected every REDIS_SENTINELS entry to be a Sentinel of 'chat'")
    assert "found redis-sentinl-3.invalid:26379 does not resolve" in message


def test_check_redis_fails_when_no_sentinel_resolves(settings_override):
    nowhere = (("sentinel-1.invalid", 26379), ("sentinel-2.invalid", 26379))
    settings_override(REDIS_SHARDS=[Shard(master_name="chat", sentinels=nowhere)])
    with pytest.raises(CommandError) as error:
        call_command("check_redis", wait=1)
    assert "expected a Sentinel of REDIS_SENTINELS to answer, found none" in str(error.value)
    assert "sentinel-1.invalid:26379 does not resolve" in str(error.value)


@needs("channels_redis.resync")
async def test_failover_moves_the_room_to_the_new_primary(group, settings_override):
    """SIGKILL the primary: the replica is promoted, the room's subscription follows it with no
    restart, messages sent during the outage reach the peer without any later message (the
    layer's resync), every message reaches it once and in order, /readyz follows the primary."""
    use(settings_override, [shard_of(group)])
    async with Client("failover") as a, Client("failover") as b:
        await a.send("before")
        first = await a.recv()
        assert first.get("message") == (await b.recv()).get("message") == "before", first
        old = group.primary_port()
        group.kill(old)
        killed = time.monotonic()
        during = [f"during {n}" for n in range(3)]
        for text in during:  # stored, not broadcast: the sender hears broadcast_delayed
            await a.send(text)
            own, error = await a.recv(timeout=15), await a.recv(timeout=15)
            assert (own["message"], error["code"]) == (text, "broadcast_delayed"), (own, error)
        got = []
        while len(got) < len(during):  # nothing more is sent: only the resync can bring them
            assert time.monotonic() - killed < 40, f"40 s after the kill the peer has {got}"
            got += [f for f in await _drain(b, 0.25) if f.get("type") == "message"]
        caught_up = time.monotonic() - killed
        assert [f["message"] for f in got] == during
        await a.send("after")
        assert (await b.recv(timeout=5))["message"] == "after"
        ids = [f["id"] for f in got]
        assert ids == sorted(set(ids)), f"expected each id once and in order, found {ids}"
        new = group.primary_port()
        assert new != old
        print(f"\nkill -> the outage's messages delivered after the failover: {caught_up:.1f} s")
        # The subscription is on the new primary now, without any restart of ours.
        channels = group.ask(new, "PUBSUB", "CHANNELS", "chat__group__*")
        assert channels, "expected the room's group channel subscribed on the new primary"
        checks = await asyncio.to_thread(_ready_checks)
        assert checks["channel_layer"] == "ok", checks
    group.start_data_node(old)  # back as a replica of the new primary (redis-ha.sh asks first)


def _ready_checks():
    health.dependency_checks()  # the first call may meet the dead primary's connection
    return health.dependency_checks()


async def _drain(client, timeout):
    """Every frame that arrives within `timeout` of the last (receive_nothing never cancels the
    application, as a timed-out receive_from would)."""
    frames = []
    while not await client.comm.receive_nothing(timeout or 0.01):
        frames.append(await client.recv())
    return frames


@pytest.fixture
def two_shards(tmp_path):
    for name in "ab":
        (tmp_path / name).mkdir()
    servers = [Redis(tmp_path / "a").start(), Redis(tmp_path / "b").start()]
    yield servers
    for server in servers:
        server.stop()


@needs("channels_redis.shard_hash")
async def test_rooms_spread_over_shards_and_a_lost_shard_delays_only_its_rooms(
    two_shards, settings_override
):
    """8 rooms over 2 shards: both hold some (PUBSUB CHANNELS); with one shard stopped, rooms on
    the other still deliver at once while its own rooms get broadcast_delayed; back, they
    deliver again."""
    use(settings_override, [Shard(url=s.url) for s in two_shards])
    rooms = [f"shard-{n}" for n in range(8)]
    clients = {room: (Client(room), Client(room)) for room in rooms}
    for pair in clients.values():
        for c in pair:
            await c.__aenter__()
    try:
        held = [
            {c.decode().removeprefix("chat__group__") for c in _channels(s)} for s in two_shards
        ]
        assert all(held), f"expected rooms on both shards, found {held}"
        assert held[0] | held[1] == {_group(r) for r in rooms} and not held[0] & held[1]

        two_shards[1].stop()
        on_live = [r for r in rooms if _group(r) in held[0]]
        on_dead = [r for r in rooms if _group(r) in held[1]]
        for room in on_live:
            a, b = clients[room]
            await a.send("while the other shard is down")
            assert (await b.recv(timeout=3))["message"] == "while the other shard is down"
            await a.recv()
        for room in on_dead:
            a, b = clients[room]
            await a.send("delayed")
            frames = [await a.recv(timeout=5), await a.recv(timeout=5)]
            assert frames[1]["code"] == "broadcast_delayed", frames
        two_shards[1].start()
        for room in on_dead:
            a, b = clients[room]
            deadline = time.monotonic() + 20
            while True:  # the subscriber reconnects by itself; the gap is filled from the db
                await a.send("after")
                frames = await _drain(b, 0.5)
                if any(f.get("message") == "after" for f in frames):
                    break
                assert time.monotonic() < deadline, f"{room}: nothing after the shard came back"
                await _drain(a, 0)
    finally:
        for pair in clients.values():
            for c in pair:
                await c.__aexit__(None, None, None)


def _channels(server):
    import redis

    return redis.Redis.from_url(server.url).pubsub_channels("chat__group__*")


def _group(room):
    from chat import rooms

    return rooms.group_name(room)
