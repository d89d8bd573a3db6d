"""The runtime overrides (chat/runtime/): each fits the installed upstream libraries, the switch
parses strictly, and a live `manage.py runws` on the production layer has them all in effect and
holds an idle WebSocket in less than IDLE_BOUND bytes."""

import asyncio
import os
import re
import urllib.request

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
