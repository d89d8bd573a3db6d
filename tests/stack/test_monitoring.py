"""The monitoring overlay on the running stack: every replica scraped, NoReadyWs fires and clears.

compose.monitoring.yaml is started in the stack's own project as an operator starts it
(`docker compose -f compose.yaml -f compose.monitoring.yaml up --wait prometheus`, with the stack's
env file and so its offline stand-in image). Prometheus' HTTP API on 127.0.0.1 then shows both web
and both ws replicas, found through Docker DNS, scraped and up; and the real NoReadyWs rule, with
its real `for: 30s` (not its expression evaluated by hand), going pending and then firing while
every ws replica is stopped, and clearing once they are back.
"""

import json
import time
from urllib.parse import urlencode

import pytest

from tests.functional import http_get
from tests.servers import free_port
from tests.stack.conftest import ROOT

FILES = ("-f", str(ROOT / "compose.yaml"), "-f", str(ROOT / "compose.monitoring.yaml"))
MONITORING = ("prometheus", "nginx-exporter")


class Prometheus:
    """Prometheus' HTTP API at 127.0.0.1:port."""

    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}?{urlencode(params)}"
        response = http_get(url, timeout=10)
        body = json.loads(response.text)
        assert body["status"] == "success", f"expected success from {url}, found {body}"
        return body["data"]

    def targets(self, job):
        """(scrape URL, health, last error) of the job's active targets, sorted."""
        active = self.api("targets", state="active")["activeTargets"]
        return sorted(
            (t["scrapeUrl"], t["health"], t["lastError"])
            for t in active
            if t["labels"]["job"] == job
        )

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def alert_state(self, name):
        """pending or firing (Prometheus lists only those), else inactive."""
        alerts = self.api("alerts")["alerts"]
        states = [a["state"] for a in alerts if a["labels"]["alertname"] == name]
        return states[0] if states else "inactive"


def wait_until(check, timeout, what, interval=2.0):
    """Call `check()` -> (done, state) until done; fail after `timeout` s showing the last state."""
    deadline = time.monotonic() + timeout
    while True:
        done, state = check()
        if done:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {what} within {timeout} s, found {state}")
        time.sleep(interval)


@pytest.fixture
def prometheus(stack):
    """The overlay's prometheus and nginx-exporter in the stack's project; removed afterwards."""
    port = free_port()

    def compose(*args, timeout=300):
        return stack.run(
            "env", f"PROMETHEUS_PORT={port}", "docker", "compose", "--project-directory",
            str(ROOT), "--env-file", str(stack.env_file), *FILES, *args, timeout=timeout,
        )  # fmt: skip

    started = time.monotonic()
    try:
        # prometheus depends on nginx-exporter: both start; the stack's services are left alone.
        compose("up", "--detach", "--wait", "--wait-timeout=120", "--pull=never", "prometheus")
        print(f"\nmonitoring overlay up in {time.monotonic() - started:.1f} s")
        yield Prometheus(port)
    finally:
        logs = stack.run(
            "docker", "compose", "--project-directory", str(ROOT), "--env-file",
            str(stack.env_file), *FILES, "logs", "--no-color", "--tail", "200", *MONITORING,
            timeout=60, check=False,
        )  # fmt: skip
        (ROOT / ".work").mkdir(exist_ok=True)
        (ROOT / ".work" / "prometheus-logs.txt").write_text(logs.stdout + logs.stderr)
        compose("rm", "--stop", "--force", "--volumes", *MONITORING, timeout=120)
        volume = f"{stack.env['COMPOSE_PROJECT_NAME']}_prometheus-data"
        stack.run("docker", "volume", "rm", "--force", volume, check=False)


def test_prometheus_finds_every_replica_and_no_ready_ws_fires_and_clears(stack, prometheus):
    """2 web + 2 ws targets up via Docker DNS; `stop ws`: NoReadyWs fires; `start ws`: it clears."""
    t0 = time.monotonic()

    def replicas_up():
        found = {job: prometheus.targets(job) for job in ("web", "ws", "nginx")}
        wanted = {"web": 2, "ws": 2, "nginx": 1}
        done = all(
            len(t) == wanted[job] and all(h == "up" for _, h, _ in t) for job, t in found.items()
        )
        return done, found

    # Each target has its own scrape offset within the 10 s interval: until its first scrape a
    # target's health is "unknown", so every one is waited for, the exporter's included.
    wait_until(
        replicas_up,
        60,
        "2 web, 2 ws and the nginx exporter's targets, all up (scrape URL, health, last error)",
    )
    targets_up = time.monotonic() - t0
    assert [r["value"][1] for r in prometheus.query("nginx_up")] == ["1"], (
        "expected nginx_up 1: the exporter reads /nginx-status from the app network"
    )
    connections = prometheus.query('chat_ws_connections{job="ws"}')
    assert len(connections) == 2, f"expected chat_ws_connections of 2 replicas, found {connections}"
    # Pending for a moment is normal: the first evaluation can run before the first scrape.
    wait_until(
        lambda: ((state := prometheus.alert_state("NoReadyWs")) == "inactive", state),
        60,
        "NoReadyWs inactive with every replica up",
    )

    try:
        stack.compose("stop", "ws")
        stopped = time.monotonic()
        seen = []

        def firing():
            state = prometheus.alert_state("NoReadyWs")
            if not seen or seen[-1] != state:
                seen.append(state)
            return state == "firing", seen

        # DNS refresh + scrape + evaluation (10 s each) + `for: 30s`: about a minute.
        wait_until(firing, 120, "NoReadyWs firing with both ws replicas stopped (states seen)")
        fired = time.monotonic() - stopped
        assert "pending" in seen, f"expected NoReadyWs pending before firing, found {seen}"

        stack.compose("start", "ws")
        restarted = time.monotonic()
        stack.wait_healthy("ws", 2)
        wait_until(
            lambda: ((state := prometheus.alert_state("NoReadyWs")) == "inactive", state),
            90,
            "NoReadyWs to clear with both ws replicas back",
        )
        cleared = time.monotonic() - restarted
        wait_until(replicas_up, 60, "the restarted ws replicas scraped and up")
    finally:
        stack.restore_topology()
    print(
        f"\ntargets up {targets_up:.0f} s after the overlay; NoReadyWs {' -> '.join(seen)} "
        f"{fired:.0f} s after `stop ws`, cleared {cleared:.0f} s after `start ws`"
    )
