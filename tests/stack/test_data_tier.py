"""The data tier without a single point of failure, on real containers (issue 12).

Two stacks beside the session's, each brought up as an operator does it:
- `scripts/up --ha` (compose.ha.yaml): the Redis primary is SIGKILLed under resuming readers and
  a sender that resends like room.js; Sentinel promotes the replica and the workers follow it
  without a restart: every message sent is stored once and delivered once, in order. Then a
  Sentinel is killed: nothing changes for clients.
- `scripts/up --shards` (compose.shards.yaml): rooms land on both shards, fan-out is lossless,
  and restarting one shard delays only its rooms while the others keep p99 under 1 s.
"""

import asyncio
import itertools
import json
import time
import uuid

import pytest

from tests.functional import Client, unique_room
from tests.stack.conftest import another_stack
from tests.stack.resuming import percentile, wait_until
from tests.stack.test_faults import run_through


@pytest.fixture(scope="module")
def ha(stack, tmp_path_factory):
    """The stack with Redis Sentinel (the session stack built the images)."""
    with another_stack(tmp_path_factory.mktemp("ha"), "ha", "--ha", WEB_REPLICAS="1") as other:
        other.wait_healthy("ws", 2)
        yield other


@pytest.fixture(scope="module")
def sharded(stack, tmp_path_factory):
    """The stack with two Redis shards."""
    with another_stack(
        tmp_path_factory.mktemp("shards"), "shards", "--shards", WEB_REPLICAS="1"
    ) as other:
        other.wait_healthy("ws", 2)
        yield other


def redis_cli(stack, service, *args, port=6379):
    """redis-cli in a Redis container (REDISCLI_AUTH is in every one's environment)."""
    out = stack.compose("exec", "-T", service, "redis-cli", "-p", str(port), *args, timeout=30)
    return out.stdout.split()


def primary(stack):
    """The service whose address Sentinel gives as the primary now (members meet by address)."""
    for sentinel in ("redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3"):
        try:
            address = redis_cli(
                stack, sentinel, "SENTINEL", "get-master-addr-by-name", "chat", port=26379
            )[0]
        except (AssertionError, IndexError):
            continue
        for service in ("redis", "redis-replica"):
            for container in stack.containers(service):
                networks = stack.inspect(container)["NetworkSettings"]["Networks"]
                if address in {n["IPAddress"] for n in networks.values()}:
                    return service
        return address
    raise AssertionError("expected a Sentinel to name the primary, found none answering")


def app_containers(stack):
    """{container: (StartedAt, RestartCount)} of every web and ws container."""
    return {
        c: (stack.inspect(c)["State"]["StartedAt"], stack.inspect(c)["RestartCount"])
        for service in ("web", "ws")
        for c in stack.containers(service)
    }


class LatencyProbe:
    """A sender and a listener in one room: the sender stamps every message with its send time,
    the listener keeps (arrival, latency) of each one it receives live. Neither reconnects: a
    message sent after a fault and heard by the listener went through the channel layer."""

    def __init__(self, base_url, room, interval=0.2):
        self.sender = Client(base_url, room)
        self.listener = Client(base_url, room)
        self.interval = interval
        self.heard = []  # (monotonic arrival, seconds since sent)
        self.sent = 0
        self._tasks = []

    async def start(self):
        await self.listener.connect()
        await self.sender.connect()
        self._tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._listen())]
        return self

    async def _send(self):
        while True:
            await self.sender.send_message(f"t={time.monotonic()!r}")
            self.sent += 1
            await asyncio.sleep(self.interval)

    async def _listen(self):
        async for raw in self.listener.ws:
            frame = json.loads(raw)
            if frame.get("type") == "message" and frame["message"].startswith("t="):
                now = time.monotonic()
                self.heard.append((now, now - float(frame["message"][2:])))

    def first_sent_after(self, moment):
        """Seconds from `moment` to the first arrival of a message sent after it, or None."""
        for arrival, latency in self.heard:
            if arrival - latency > moment:
                return arrival - moment
        return None

    def latencies_since(self, moment):
        return [latency for arrival, latency in self.heard if arrival > moment]

    async def stop(self):
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.close()
        await self.listener.close()


async def test_primary_killed_replica_promoted_nothing_lost(ha):
    """docker kill the Redis primary under 20 resuming readers and a room.js-like sender: the
    replica is promoted, every message sent is stored once and delivered once in order, no web or
    ws container restarts. Prints the time from the kill to the first delivery of a message sent
    after it (through the new primary)."""
    old = primary(ha)
    assert old == "redis", f"expected the stack to start with `redis` as primary, found {old}"
    before = app_containers(ha)
    probe = await LatencyProbe(ha.base_url, unique_room("failover-probe")).start()
    killed = {}

    def kill_primary():
        ha.run("docker", "kill", ha.containers(old)[0])
        killed["at"] = time.monotonic()

    try:
        readers, sender = await run_through(ha, kill_primary, label="redis primary killed")
        await wait_until(
            lambda: probe.first_sent_after(killed["at"]) is not None, 30, "a delivery after kill"
        )
    finally:
        await probe.stop()
    new = primary(ha)
    assert new == "redis-replica", f"expected redis-replica promoted, found {new}"
    assert app_containers(ha) == before, "expected no web/ws container to restart"
    first = probe.first_sent_after(killed["at"])
    delivered = sum(len(r.ids) for r in readers)
    print(
        f"\nfailover: kill -> first delivery through the new primary {first:.1f} s "
        f"(SENTINEL_DOWN_AFTER_MS 3000); sent {sender.sent}, stored once each "
        f"{len(set(sender.stored.values()))}, delivered {delivered} to {len(readers)} readers, "
        f"duplicates {sum(r.duplicates for r in readers)}"
    )
    assert first < 10, f"expected a delivery through the new primary within 10 s, took {first}"

    # The old primary comes back as a replica of the new one (redis-ha.sh asks the Sentinels).
    ha.compose("start", "redis")
    await wait_until(
        lambda: redis_cli(ha, "redis", "ROLE")[0] == "slave", 60, "redis to rejoin as a replica"
    )
    assert primary(ha) == "redis-replica"


async def test_a_sentinel_killed_changes_nothing_for_clients(ha):
    """Kill one of the three Sentinels mid-chat: no reader reconnects, no send is delayed."""
    victim = ha.containers("redis-sentinel-1")[0]
    try:
        readers, sender = await run_through(
            ha, lambda: ha.run("docker", "kill", victim), label="sentinel killed"
        )
        assert not any(r.reconnect_seconds for r in readers), "expected no reader to reconnect"
        assert not sender.errors, f"expected no error frame, found {dict(sender.errors)}"
    finally:
        ha.compose("start", "redis-sentinel-1")


def plain_room(prefix):
    """An ASCII room name: its group channel is chat__group__chat_<name> (chat/rooms.py;
    other names are hashed), so PUBSUB CHANNELS shows which shard holds it."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def shard_of(stack, rooms):
    """{room: shard service} from each shard's PUBSUB CHANNELS."""
    where = {}
    for service in ("redis", "redis-2"):
        for channel in redis_cli(stack, service, "PUBSUB", "CHANNELS", "chat__group__*"):
            where[channel.removeprefix("chat__group__chat_")] = service
    return {room: where.get(room) for room in rooms}


async def test_rooms_spread_over_both_shards_and_fan_out_is_lossless(sharded):
    """16 rooms with listeners: both shards hold some of them (PUBSUB CHANNELS on each), and
    a fault-free run through a room on each shard delivers every id once, in order."""
    rooms = [plain_room("shard") for _ in range(16)]
    listeners = [await Client(sharded.base_url, room).connect() for room in rooms]
    try:
        placed = shard_of(sharded, rooms)
        counts = {s: sum(1 for v in placed.values() if v == s) for s in ("redis", "redis-2")}
        print(f"\nrooms per shard: {counts}")
        assert None not in placed.values(), f"expected every room subscribed, found {placed}"
        assert all(counts.values()), f"expected rooms on both shards, found {counts}"
    finally:
        for listener in listeners:
            await listener.close()
    await run_through(sharded, lambda: None, clients=10, label="2 shards, no fault")


async def test_restarting_one_shard_delays_only_its_rooms(sharded):
    """Restart redis-2 under a probe on each shard: the probe on `redis` keeps p99 under 1 s
    throughout; the probe on redis-2 hears again once its shard is back."""
    probes = {}
    while len(probes) < 2:  # a room on each shard
        room = plain_room("shard-probe")
        probe = await LatencyProbe(sharded.base_url, room).start()
        shard = shard_of(sharded, [room])[room]
        if shard in probes or shard is None:
            await probe.stop()
            continue
        probes[shard] = probe
    try:
        await asyncio.sleep(2)
        restarted = time.monotonic()
        await asyncio.to_thread(sharded.compose, "restart", "redis-2")
        await asyncio.sleep(5)
        await wait_until(
            lambda: probes["redis-2"].first_sent_after(time.monotonic() - 1) is not None,
            60,
            "the restarted shard's room to deliver again",
        )
        other = probes["redis"].latencies_since(restarted)
        own = probes["redis-2"].latencies_since(restarted)
        p99 = percentile(other, 0.99)
        arrivals = [a for a, _ in probes["redis-2"].heard if a > restarted]
        silence = max((b - a for a, b in itertools.pairwise(arrivals)), default=0)
        print(
            f"\nredis-2 restarted: room on redis p99 {p99} s over {len(other)} messages; room "
            f"on redis-2: longest silence {silence:.2f} s, max latency {max(own, default=0):.2f} s"
        )
        assert len(other) >= 20, f"expected the other shard's room to keep flowing, got {other}"
        assert p99 < 1.0, f"expected p99 under 1 s on the untouched shard, found {p99}"
    finally:
        for probe in probes.values():
            await probe.stop()
