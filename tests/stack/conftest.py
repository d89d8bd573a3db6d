"""The container tier: the real compose stack in a Docker engine, reached through nginx only.

One session-scoped stack is brought up exactly as an operator does it, with the product's main
command (`scripts/up --airgap`: engine, offline images, .env with generated secrets, build,
`up --wait`), under its own project name and env file so a developer's own stack is untouched.
`ws` and `web` run 2 replicas each. `down -v` runs at the end, also after a failure.
"""

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.functional import wait_for_http
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
# Unique per run, so two runs on one engine (or a developer's own stack) never collide.
PROJECT = f"chatstack-test-{os.getpid()}"


class Stack:
    """A running compose project: its URL, and docker compose / docker with its settings."""

    def __init__(self, workdir, project=PROJECT):
        self.env_file = workdir / ".env"
        self.port = free_port()
        self.https_port = free_port()
        self.tls_dir = workdir / "tls"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ENV_FILE": str(self.env_file),
            "COMPOSE_PROJECT_NAME": project,
            "HTTP_PORT": str(self.port),
            "HTTPS_PORT": str(self.https_port),
            "TLS_DIR": str(self.tls_dir),
            "WS_REPLICAS": "2",
            "WEB_REPLICAS": "2",
            # Load from one address (the tests): lift the per-address limits meant for the world.
            "NGINX_WS_CONN_PER_IP": "2000",
            "NGINX_REQ_PER_SEC": "1000",
            "NGINX_REQ_BURST": "1000",
            "NGINX_WS_HANDSHAKES_PER_SEC": "1000",
            "NGINX_WS_HANDSHAKE_BURST": "2000",
            "CHAT_ADDRESS_RATE_PER_SECOND": "100000",
            "CHAT_ADDRESS_RATE_BURST": "100000",
            "WS_DRAIN_SECONDS": "5",
        }

    def run(self, *cmd, timeout=120, check=True):
        result = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"expected `{' '.join(cmd)}` to succeed, found exit {result.returncode}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def compose(self, *args, timeout=180, check=True):
        return self.run(
            "docker", "compose", "--project-directory", str(ROOT), "--env-file",
            str(self.env_file), *args, timeout=timeout, check=check,
        )  # fmt: skip

    def script(self, name, *args, timeout=300):
        return self.run(str(ROOT / "scripts" / name), *args, timeout=timeout)

    def containers(self, service):
        """IDs of the service's running containers."""
        out = self.compose("ps", "--quiet", "--status", "running", service).stdout
        return sorted(out.split())

    def inspect(self, container):
        return json.loads(self.run("docker", "inspect", container).stdout)[0]

    def metrics(self, container, port=8000):
        """A replica's /metrics, read inside its container (nginx does not expose it)."""
        code = (
            "import urllib.request as u;"
            f"print(u.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
        )
        return self.run("docker", "exec", container, "python", "-c", code).stdout

    def gauge(self, container, name="chat_ws_connections", port=8000):
        for line in self.metrics(container, port).splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"expected metric {name} in {container}'s /metrics, found none")

    def psql(self, sql):
        return self.compose(
            "exec", "-T", "postgres", "psql", "-U", "chat", "-d", "chat", "-At", "-c", sql
        ).stdout

    def wait_healthy(self, service, count, timeout=120):
        """Until `count` containers of `service` run and report healthy."""
        deadline = time.monotonic() + timeout
        states = []
        while time.monotonic() < deadline:
            ids = self.containers(service)
            states = [self.inspect(c)["State"].get("Health", {}).get("Status") for c in ids]
            if len(ids) == count and all(s == "healthy" for s in states):
                return ids
            time.sleep(1)
        raise AssertionError(
            f"expected {count} healthy {service} within {timeout} s, found {states}"
        )

    def restore_topology(self):
        """Bring every service back to the configured replicas (after a scenario broke some)."""
        self.compose("up", "--detach", "--wait", "--pull", "never", timeout=300)
        self.wait_healthy("ws", 2)
        self.wait_healthy("web", 2)


@contextlib.contextmanager
def another_stack(workdir, name, *up_args, **env):
    """A second stack beside the session's (its own project, env file and ports), brought up
    with `scripts/up --airgap --no-build UP_ARGS` from the session's images; down -v after."""
    other = Stack(workdir, project=f"{PROJECT}-{name}")
    other.env.update(env)
    try:
        started = time.monotonic()
        up = other.run(
            str(ROOT / "scripts" / "up"), "--airgap", "--no-build", *up_args,
            timeout=600, check=False,
        )  # fmt: skip
        print(f"\nscripts/up --airgap {' '.join(up_args)}: {time.monotonic() - started:.1f} s")
        assert up.returncode == 0, (
            f"scripts/up {' '.join(up_args)} failed:\n{up.stdout[-4000:]}{up.stderr[-4000:]}"
        )
        wait_for_http(other.base_url + "/nginx-health", 30)
        yield other
    finally:
        logs = other.compose("logs", "--no-color", "--tail", "300", check=False, timeout=60)
        (ROOT / ".work").mkdir(exist_ok=True)
        (ROOT / ".work" / f"stack-{name}-logs.txt").write_text(logs.stdout + logs.stderr)
        other.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The whole stack, up and healthy, through `scripts/up --airgap`; torn down with down -v."""
    stack = Stack(tmp_path_factory.mktemp("stack"))
    engine = stack.run(str(ROOT / "scripts" / "engine"), timeout=300, check=False)
    assert engine.returncode == 0, (
        "the container tier needs a Docker engine and could not get one (never skipped):\n"
        + engine.stdout
        + engine.stderr
    )
    try:
        started = time.monotonic()
        up = stack.run(str(ROOT / "scripts" / "up"), "--airgap", timeout=1800, check=False)
        print(f"\nscripts/up --airgap: {time.monotonic() - started:.1f} s")
        assert up.returncode == 0, (
            f"scripts/up --airgap failed:\n{up.stdout[-4000:]}{up.stderr[-4000:]}"
        )
        wait_for_http(stack.base_url + "/nginx-health", 30)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--tail", "200", check=False, timeout=60)
        (ROOT / ".work").mkdir(exist_ok=True)
        (ROOT / ".work" / "stack-logs.txt").write_text(logs.stdout + logs.stderr)
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
