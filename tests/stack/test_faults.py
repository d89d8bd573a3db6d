"""Faults on the running stack: nothing sent is lost or doubled, nothing stored goes missing.

Every scenario runs resuming clients (like room.js) and a sender that resends like room.js
through nginx, breaks something, and demands that every message sent was stored exactly once
and that every client ends with every stored id exactly once, in order.
"""

import asyncio

from tests.functional import unique_room
from tests.stack.resuming import (
    ExactlyOnceSender,
    ResumingClient,
    assert_complete,
    percentile,
    stable_newest,
    wait_until,
)


def newest_id(stack, room):
    literal = room.replace("'", "''")  # a quoted literal of our own test room
    sql = f"SELECT coalesce(max(m.seq), 0) FROM chat_message m JOIN chat_room r ON r.id = m.room_id WHERE r.name = '{literal}'"  # noqa: E501, S608
    out = stack.psql(sql)
    return int(out.strip())


def client_ids_stored(stack, room, tag):
    """(rows, distinct client_ids) stored in `room` for a sender's client_ids "<tag>-<n>"."""
    literal = room.replace("'", "''")
    sql = f"SELECT count(*) || ' ' || count(DISTINCT m.client_id) FROM chat_message m JOIN chat_room r ON r.id = m.room_id WHERE r.name = '{literal}' AND m.client_id LIKE '{tag}-%'"  # noqa: E501, S608
    rows, distinct = stack.psql(sql).split()
    return int(rows), int(distinct)


def assert_sent_exactly_once(stack, room, sender):
    """The sender's own count and the database agree: every message sent, stored once."""
    sender.assert_exactly_once()
    stored = client_ids_stored(stack, room, sender.tag)
    assert stored == (sender.sent, sender.sent), (
        f"expected {sender.sent} rows with distinct client_ids in the room, found {stored}; "
        + sender.summary()
    )


async def run_through(stack, fault, *, clients=20, interval=0.2, settle=2.0, label=""):
    """Clients + sender, `fault()` in a thread, then wait until every client has every id."""
    room = unique_room("fault")
    readers = [ResumingClient(stack.base_url, room).start() for _ in range(clients)]
    await wait_until(lambda: all(r.connected.is_set() for r in readers), 30, "clients to connect")
    sender = ExactlyOnceSender(stack.base_url, room, interval=interval).start()
    try:
        await asyncio.sleep(settle)
        await asyncio.to_thread(fault)
        await asyncio.sleep(settle)
    finally:
        await sender.finish()
    newest = await stable_newest(lambda: newest_id(stack, room), settle=1.0)
    assert newest > 0, "expected messages to be stored"
    try:
        # Frames the sender sent before it stopped may still be stored seconds later on a loaded
        # machine: the reference is the newest id once the clients have it and it stays so.
        for _ in range(10):
            try:
                # 90 s: a reader whose replica was killed outright may only hear of it when
                # nginx gives up on the silent upstream (proxy_read_timeout, 60 s).
                await wait_until(
                    lambda n=newest: all(r.last_id >= n for r in readers),
                    90,
                    f"id {newest} everywhere",
                )
            except AssertionError as exc:
                behind = [(r.last_id, dict(r.closes)) for r in readers if r.last_id < newest]
                raise AssertionError(
                    f"{exc}: {len(behind)} of {clients} readers behind (last id, closes): "
                    f"{behind}; sender: {sender.summary()}"
                ) from None
            await asyncio.sleep(1.0)
            again = await asyncio.to_thread(newest_id, stack, room)
            if again == newest:
                break
            newest = again
    finally:
        for r in readers:
            await r.stop()
    assert_complete(readers, newest)
    reconnects = [s for r in readers for s in r.reconnect_seconds]
    print(
        f"\n{label}: {sender.summary()}; room newest id {newest}, clients {clients}, missing 0, "
        f"reconnects {len(reconnects)} (p50 {percentile(reconnects, 0.5)} s, "
        f"p99 {percentile(reconnects, 0.99)} s), sender closes {dict(sender.closes)}"
    )
    assert_sent_exactly_once(stack, room, sender)
    return readers, sender


async def test_redis_restart_mid_chat_resumes_without_restarting_workers(stack):
    """`docker compose restart redis`: delivery resumes by itself; no worker restarts."""
    before = {c: stack.inspect(c)["State"]["StartedAt"] for c in stack.containers("ws")}
    await run_through(stack, lambda: stack.compose("restart", "redis"), label="redis restart")
    after = {c: stack.inspect(c)["State"]["StartedAt"] for c in stack.containers("ws")}
    assert after == before, f"expected the ws workers to keep running, found {before} -> {after}"


async def test_ws_replica_killed_clients_reconnect_and_catch_up(stack):
    """SIGKILL one ws replica: its clients come back through nginx and miss nothing."""
    victim = stack.containers("ws")[0]
    try:
        readers, _ = await run_through(
            stack,
            lambda: stack.run("docker", "kill", "--signal", "KILL", victim),
            label="ws SIGKILL",
        )
        assert any(r.reconnect_seconds for r in readers), (
            "expected some clients on the killed replica"
        )
    finally:
        stack.restore_topology()


async def test_rolling_restart_of_ws_under_steady_stream_loses_nothing(stack):
    """scripts/rolling-restart ws while 50 clients receive a steady stream: zero missing."""
    old = set(stack.containers("ws"))
    try:
        readers, _ = await run_through(
            stack,
            lambda: stack.script("rolling-restart", "ws"),
            clients=50,
            label="rolling restart ws",
        )
        new = set(stack.containers("ws"))
        assert len(new) == 2 and not (new & old), (
            f"expected 2 new ws containers, found {new} (old {old})"
        )
        closes = sum(r.closes.get(4012, 0) for r in readers)
        assert closes > 0, "expected the drain to close sockets with 4012"
    finally:
        stack.restore_topology()


async def test_rolling_restart_of_web_keeps_pages_up(stack):
    """scripts/rolling-restart web while pages are fetched: every page request answers 200."""
    from tests.functional import http_get

    statuses = []
    done = asyncio.Event()

    async def fetch():
        while not done.is_set():
            statuses.append(
                (await asyncio.to_thread(http_get, stack.base_url + "/chat/rolling/")).status
            )
            await asyncio.sleep(0.05)

    fetcher = asyncio.create_task(fetch())
    try:
        await asyncio.to_thread(stack.script, "rolling-restart", "web")
    finally:
        done.set()
        await fetcher
        stack.restore_topology()
    bad = [s for s in statuses if s != 200]
    assert statuses and not bad, (
        f"expected only 200 during the web rollout, found {len(bad)} of {len(statuses)}: {set(bad)}"
    )
