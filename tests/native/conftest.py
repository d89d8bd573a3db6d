"""The native tier: the production topology as processes on loopback, for the whole session.

`topo` is started once (tests/native/stack.py); `spawn` starts extra processes for one test and
stops them afterwards. A failing test's report ends with the tail of every process's log.
Tests marked `disruptive` (they stop Redis or a ws process) run after all the others, and those
marked `final` (they read what the whole session left behind) after those.
"""

import pytest

from tests.native import stack as native


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "disruptive: stops a shared server (Redis, a ws process); runs late"
    )
    config.addinivalue_line("markers", "final: checks what the whole session left; runs last")


def pytest_collection_modifyitems(config, items):
    # Stable sort: each group keeps its order; disruptive after the rest, final after those.
    def rank(item):
        if item.get_closest_marker("final"):
            return 2
        return 1 if item.get_closest_marker("disruptive") else 0

    items.sort(key=rank)


_reported = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # A failed session fixture fails every test with the same error: its logs are shown once.
    key = repr(call.excinfo.value) if call.excinfo and call.when == "setup" else item.nodeid
    if report.failed and native.STARTED and key not in _reported:
        _reported.add(key)
        for proc in dict.fromkeys(native.STARTED):
            state = "running" if proc.alive() else f"exited {proc.popen.returncode}"
            report.sections.append((f"{proc.name} (pid {proc.pid}, {state})", proc.tail(25)))
    return report


@pytest.fixture(scope="session")
def topo():
    """Postgres, Redis, migrate, web (uWSGI), ws1 and ws2 (Daphne), nginx (-> ws1), nginx-b
    (-> ws2): attributes of one namespace; `topo.stack` makes more of the same kind."""
    with native.native_stack() as started:
        yield started


@pytest.fixture
def spawn(topo):
    """spawn(proc, ...): start processes for this test, wait until ready, stop them after it."""
    mine = []

    def start(*procs):
        mine.extend(procs)
        return native.start_all(procs)

    yield start
    for proc in reversed(mine):
        proc.stop()
