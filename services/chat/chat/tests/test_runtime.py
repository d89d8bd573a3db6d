"""The runtime overrides (chat/runtime/): each fits the installed upstream libraries, the switch
parses strictly, a live `manage.py runws` on the production layer has them all in effect and
holds an idle WebSocket in less than IDLE_BOUND bytes, and a delivered message costs fewer than
OBJECTS_BOUND allocated objects and CALLS_BOUND calls (counts, not times: any machine)."""

import asyncio
import datetime
import gc
import os
import re
import sys
import urllib.request
from pathlib import Path

import pytest
import websockets

from chat import runtime
from chat.tests import live
from tests.servers import Redis, stop

IDLE_SOCKETS = 2000
IDLE_BOUND = 25 * 1024  # bytes of RSS per idle socket; measured 18.7 KB (docs/PERFORMANCE.md)


def test_every_override_fits_the_installed_libraries():
    """Every upstream name an override hooks exists with the signature it expects, and every
    copy of upstream code still matches the source it was copied from."""
    problems = runtime.check()
    assert not problems, "\n".join(f"{n}: {p}" for n, ps in problems.items() for p in ps)
    assert [o.name for o in runtime.overrides()] == list(runtime.NAMES)


def test_every_override_is_documented_in_its_module_header():
    """Each module's header names its overrides with what they replace, save, and how to turn
    them off; each override pins the version its library was written against."""
    import importlib

    for override in runtime.overrides():
        module = importlib.import_module(f"chat.runtime.{override.library}")
        header = module.__doc__
        version = runtime.WRITTEN_AGAINST[override.library]
        assert f"written against {override.library} {version}" in header.lower()
        section = header[header.index(override.name) :]
        for word in ("Replaces:", "Saves:", "Off:"):
            assert word in section, (override.name, word)
        assert override.hooks, override.name


def test_every_override_has_a_row_in_the_performance_doc():
    """docs/PERFORMANCE.md, "Runtime overrides", gives each override its row (what it replaces,
    its measured gain, what is lost without it)."""
    doc = (Path(__file__).resolve().parents[4] / "docs/PERFORMANCE.md").read_text()
    section = doc.split("\n## Runtime overrides\n", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in runtime.NAMES if f"\n| `{name}` |" not in section]
    assert not missing, f"expected a row for each override; found none for {missing}"


def test_the_check_reports_a_renamed_a_resigned_and_a_changed_upstream_name():
    """The check cannot pass vacuously: a missing name, another signature and another source
    each fail with a message that says which."""
    missing = runtime.Hook("daphne.server:Server.create_applicationX", ("self",))
    assert "missing" in missing.problems()[0]
    resigned = runtime.Hook("daphne.server:Server.create_application", ("self", "protocol"))
    assert "signature" in resigned.problems()[0]
    changed = runtime.Hook(
        "daphne.server:Server.create_application", ("self", "protocol", "scope"), "0" * 16
    )
    assert "upstream source changed" in changed.problems()[0]
    gone = runtime.Hook("daphne.server:Server.run", ("self",), contains=("self.ws_factory = X",))
    assert "no longer has" in gone.problems()[0]


def test_the_switch_takes_all_none_or_a_list_and_names_what_is_wrong():
    assert runtime.parse("all") == frozenset(runtime.NAMES)
    assert runtime.parse("none") == frozenset()
    assert runtime.parse(" twisted.write_now, channels.dispatch ") == {
        "twisted.write_now",
        "channels.dispatch",
    }
    with pytest.raises(ValueError, match=r"twisted\.write_now") as error:
        runtime.parse("twisted.write_later")
    assert "twisted.write_later" in str(error.value)


def rss(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1)) * 1024


def gauges(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        name: float(value)
        for name, value in re.findall(
            r'^chat_runtime_override_active\{name="([^"]+)"\} (\S+)$', text, re.M
        )
    }


@pytest.mark.timeout(180)
def test_live_runws_has_every_override_in_effect_and_idle_sockets_stay_small(tmp_path):
    """runws on the production layer (pub/sub, real redis-server): the start line and
    chat_runtime_override_active say which overrides are in effect (all, unless the switch says
    otherwise), and IDLE_SOCKETS idle WebSockets cost less than IDLE_BOUND bytes of RSS each."""
    redis = Redis(tmp_path).start()
    expected = runtime.parse(os.environ.get("WS_RUNTIME_OVERRIDES", "all"))
    port, proc, log = live.start_runws(
        tmp_path, CHANNEL_LAYER="pubsub", REDIS_URL=redis.url, DJANGO_LOG_LEVEL="INFO"
    )
    try:
        found = gauges(port)
        assert found == {n: float(n in expected) for n in runtime.NAMES}, found
        assert f"{len(expected)} of {len(runtime.NAMES)} switched on" in log.read_text()

        async def idle():
            origin = f"http://127.0.0.1:{port}"
            url = f"ws://127.0.0.1:{port}/ws/chat/idle/"
            warm = [await websockets.connect(url, origin=origin) for _ in range(20)]
            before = rss(proc.pid)
            sockets = []
            for start in range(0, IDLE_SOCKETS, 100):
                sockets += await asyncio.gather(
                    *(websockets.connect(url, origin=origin) for _ in range(start, start + 100))
                )
            await asyncio.sleep(1.0)
            after = rss(proc.pid)
            for ws in sockets + warm:
                await ws.close()
            return (after - before) / IDLE_SOCKETS

        per_socket = asyncio.run(idle())
        print(f"idle WebSocket on runws: {per_socket / 1024:.1f} KB RSS each")
        if expected == frozenset(runtime.NAMES):
            assert per_socket < IDLE_BOUND, f"{per_socket / 1024:.1f} KB per idle socket"
    finally:
        stop(proc)
        redis.stop()


# -- work per delivered message ------------------------------------------------------------------
# Counted, not timed, so the bound holds on any machine speed. On a group_send fan-out through
# the product's layer (chat.layers on a real redis-server) to FANOUT_CONSUMERS consumers, per
# message delivered to one consumer:
# - objects: GC-tracked objects allocated (dicts, lists, tuples, coroutines, Tasks, Futures; not
#   str, bytes or int): the garbage collector's generation-0 count, summed over its rises between
#   one Python call and the next. A lower bound of the allocations (an object made and freed
#   inside one C call is not seen), but the same code path gives the same count.
# - calls: Python and C function calls (sys.setprofile).
# Not tracemalloc: it holds live blocks only, and a delivery frees what it allocates; and
# sys.getallocatedblocks() walks every arena, too slow to read at each call.
# Measured (2 cores, 50 consumers, 100 messages): all 58.9-59.3 objects and 75.6-76.7 calls,
# none 289.9-292.3 objects and 401.6-404.6 calls. docs/PERFORMANCE.md, "Runtime overrides".
FANOUT_CONSUMERS = 50
FANOUT_WARMUP, FANOUT_MEASURED = 20, 100
OBJECTS_BOUND = 90  # per delivery with every override: ~1.5x the 59.3 measured
CALLS_BOUND = 115  # ~1.5x the 76.7 measured


async def work_per_delivery(app, room):
    """(objects, calls) per delivered message: FANOUT_CONSUMERS consumers of `room` connect
    through `app`; after FANOUT_WARMUP messages, FANOUT_MEASURED group_sends are counted, each
    awaited until every consumer has sent it to its client."""
    from channels.layers import get_channel_layer

    from chat import protocol, rooms

    sent, target, done = 0, 0, asyncio.Event()

    async def send(message):  # the client side: counts what the consumers send
        nonlocal sent
        if message["type"] in ("websocket.accept", "websocket.send"):
            sent += 1
            if sent == target:
                done.set()

    def expect(count):
        nonlocal target
        target = sent + count
        done.clear()

    expect(FANOUT_CONSUMERS)
    inboxes, consumers = [], []
    for i in range(FANOUT_CONSUMERS):
        inbox = asyncio.Queue()
        inbox.put_nowait({"type": "websocket.connect"})
        scope = {
            "type": "websocket",
            "path": f"/ws/chat/{room}/",
            "query_string": b"",
            "headers": [(b"host", b"localhost"), (b"origin", b"http://localhost")],
            "client": ("127.0.0.1", 20000 + i),
            "server": ("127.0.0.1", 8000),
            "subprotocols": [],
        }
        inboxes.append(inbox)
        consumers.append(asyncio.create_task(app(scope, inbox.get, send)))
    await asyncio.wait_for(done.wait(), 30)  # every consumer accepted, so in the group

    calls = objects = 0
    last = gc.get_count()[0]

    def count(frame, event, arg):
        nonlocal calls, objects, last
        now = gc.get_count()[0]
        if now > last:
            objects += now - last
        last = now
        if event in ("call", "c_call"):
            calls += 1

    layer, group = get_channel_layer(), rooms.group_name(room)
    for msg_id in range(1, FANOUT_WARMUP + FANOUT_MEASURED + 1):
        now = datetime.datetime.now(datetime.UTC)
        event = {
            "type": "chat.message",
            "id": msg_id,
            "text": protocol.message(room, msg_id, "x" * 40, now),
            "ts": now.timestamp(),
        }
        expect(FANOUT_CONSUMERS)
        if msg_id == FANOUT_WARMUP + 1:
            last = gc.get_count()[0]
            sys.setprofile(count)
        await layer.group_send(group, event)
        await asyncio.wait_for(done.wait(), 10)
    sys.setprofile(None)
    for inbox in inboxes:
        inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(asyncio.gather(*consumers), 30)
    deliveries = FANOUT_MEASURED * FANOUT_CONSUMERS
    return round(objects / deliveries, 1), round(calls / deliveries, 1)


@pytest.mark.timeout(120)
def test_a_delivery_allocates_and_calls_less_than_its_bound(settings_override, redis_url):
    """With every override a delivered message allocates fewer than OBJECTS_BOUND objects and
    makes fewer than CALLS_BOUND calls, and fewer than with none (they are in effect); both
    figures are printed, and those of a list in WS_RUNTIME_OVERRIDES. Each mode runs on a fresh
    layer and event loop; `all` runs twice."""
    from channels.layers import channel_layers

    from chat.routing import websocket_urlpatterns
    from chat.runtime.channels import websocket_router
    from chat.tests.conftest import LAYERS
    from chatsite.asgi import django_asgi_app

    value = os.environ.get("WS_RUNTIME_OVERRIDES", "all")
    switch = runtime.parse(value)
    # A list in WS_RUNTIME_OVERRIDES is measured too: one override's share (docs/PERFORMANCE.md)
    modes = ("all", "none", "all") + ((value,) if value.strip() not in ("all", "none") else ())
    found = {mode: [] for mode in modes}
    try:
        for run, mode in enumerate(modes):
            runtime.set_enabled(runtime.parse(mode))
            settings_override(CHANNEL_LAYERS={"default": LAYERS["ours"](redis_url)})
            channel_layers.backends.clear()
            app = websocket_router(django_asgi_app, websocket_urlpatterns)  # channels.router too
            found[mode].append(asyncio.run(work_per_delivery(app, f"work-{run}")))
    finally:
        runtime.set_enabled(switch)
    print(f"per delivered message (objects, calls): {found}")
    objects, calls = map(max, zip(*found["all"], strict=True))
    assert objects < OBJECTS_BOUND, f"{objects} objects per delivery with every override"
    assert calls < CALLS_BOUND, f"{calls} calls per delivery with every override"
    assert objects < min(o for o, _ in found["none"]), found
