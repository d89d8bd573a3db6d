"""Staging beside production on one engine, as an operator keeps them (issue 17).

Both stacks are made by the product's own verbs in one directory of env files
(CHATSTACK_ENV_DIR): `scripts/up` (.env, production) and `scripts/up --env staging`
(staging.env: its own project, secrets, ports, TLS directory). Then `scripts/promote` moves
the images staging runs to production by identity, production restarts onto them under a
resuming reader, a production backup is restored into staging with `--scrub`, and every refusal
changes nothing. Each verb's time is printed.
"""

import os
import re
import subprocess
import time

import pytest

from tests.functional import Client, check_chat, unique_room
from tests.servers import free_port
from tests.stack.conftest import ROOT, Stack
from tests.stack.resuming import wait_until
from tests.stack.test_faults import run_through

# The test harness's own port and project settings must not leak into the verbs under test.
HARNESS = {"ENV_FILE", "COMPOSE_PROJECT_NAME", "HTTP_PORT", "HTTPS_PORT", "TLS_DIR", "COMPOSE_FILE"}


class Verbs:
    """The product's scripts run as an operator runs them in CHATSTACK_ENV_DIR=envdir."""

    def __init__(self, envdir):
        self.envdir = envdir
        self.env = {k: v for k, v in os.environ.items() if k not in HARNESS}
        self.env["CHATSTACK_ENV_DIR"] = str(envdir)
        self.times = {}

    def run(self, name, *args, check=True, timeout=600, **extra):
        started = time.monotonic()
        result = subprocess.run(
            [str(ROOT / "scripts" / name), *args],
            cwd=ROOT,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        label = " ".join([name, *args])
        self.times[label] = time.monotonic() - started
        print(f"\n{label}: {self.times[label]:.1f} s")
        if check and result.returncode != 0:
            raise AssertionError(
                f"{label} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result


def env_value(path, key):
    values = re.findall(rf"^{key}=(.*)$", path.read_text(), re.M)
    return values[-1] if values else None


def set_values(path, **values):
    text = path.read_text()
    for key, value in values.items():
        text = re.sub(rf"^{key}=.*$\n?", "", text, flags=re.M) + f"{key}={value}\n"
    path.write_text(text)


def as_stack(path, workdir):
    """A tests.stack Stack object for the stack that `path` describes (psql, compose, ...)."""
    s = Stack(workdir, project=env_value(path, "COMPOSE_PROJECT_NAME") or "chatstack")
    s.project = env_value(path, "COMPOSE_PROJECT_NAME") or "chatstack"
    s.env_file = path
    s.port = int(env_value(path, "HTTP_PORT"))
    s.base_url = f"http://127.0.0.1:{s.port}"
    # Only the env file speaks for the stack (the session stack's overrides would rescale it).
    s.env = {k: v for k, v in os.environ.items() if k not in HARNESS}
    s.env.update(ENV_FILE=str(path), COMPOSE_PROJECT_NAME=s.project)
    return s


@pytest.fixture(scope="module")
def envs(stack, tmp_path_factory):
    """production (.env) and staging (staging.env) up at once; both down -v afterwards."""
    envdir = tmp_path_factory.mktemp("envs")
    verbs = Verbs(envdir)
    production, staging = envdir / ".env", envdir / "staging.env"
    verbs.run("up", "--check", ENV_FILE=str(production))
    verbs.run("up", "--env", "staging", "--check")
    assert env_value(staging, "COMPOSE_PROJECT_NAME") == "chatstack-staging"
    # Free ports instead of 8080/8090: the machine may run other stacks. Production gets a
    # project name of its own too, so this test never touches a developer's `chatstack`.
    for path, project in ((production, f"chatstack-prod-{os.getpid()}"), (staging, None)):
        values = {"HTTP_PORT": free_port(), "HTTPS_PORT": free_port(), "WEB_REPLICAS": 1}
        values.update(WS_REPLICAS=2, WS_DRAIN_SECONDS=5, NGINX_WS_CONN_PER_IP=2000)
        if project:
            values["COMPOSE_PROJECT_NAME"] = project
        set_values(path, **values)
    set_values(staging, COMPOSE_PROJECT_NAME=f"chatstack-staging-{os.getpid()}")
    stacks = {}
    try:
        verbs.run("up", "--airgap", "--no-build", ENV_FILE=str(production))
        verbs.run("up", "--env", "staging", "--airgap", "--no-build")
        stacks = {
            "production": as_stack(production, tmp_path_factory.mktemp("p")),
            "staging": as_stack(staging, tmp_path_factory.mktemp("s")),
        }
        yield verbs, stacks
    finally:
        for path in (production, staging):
            project = env_value(path, "COMPOSE_PROJECT_NAME") if path.exists() else None
            if project:
                subprocess.run(
                    ["docker", "compose", "--project-directory", str(ROOT), "--env-file",
                     str(path), "down", "--volumes", "--remove-orphans", "--timeout", "5"],
                    cwd=ROOT, capture_output=True, timeout=180, check=False,
                    env={**verbs.env, "COMPOSE_PROJECT_NAME": project},
                )  # fmt: skip


async def test_both_stacks_serve_and_fan_out(envs):
    """Production and staging at once on one engine: each serves its page and broadcasts."""
    _, stacks = envs
    for name, s in stacks.items():
        await check_chat(s.base_url, room=unique_room(name))
    assert stacks["production"].containers("ws") and stacks["staging"].containers("ws")
    assert not set(stacks["production"].containers("ws")) & set(stacks["staging"].containers("ws"))


def test_refusals_change_nothing(envs, tmp_path):
    """A clashing project name or port, an unscrubbed restore into staging, and a promotion
    from an unhealthy staging: each is refused with a clear error and changes nothing."""
    verbs, stacks = envs
    qa = verbs.envdir / "qa.env"
    qa.write_text((verbs.envdir / "staging.env").read_text())
    try:
        clash = verbs.run("up", "--env", "qa", "--check", check=False)
        assert clash.returncode != 0
        assert "expected COMPOSE_PROJECT_NAME of stack qa to differ" in clash.stderr
        set_values(qa, COMPOSE_PROJECT_NAME="chatstack-qa-test")
        clash = verbs.run("up", "--env", "qa", "--check", check=False)
        assert "expected HTTP_PORT of stack qa to differ" in clash.stderr, clash.stderr
    finally:
        qa.unlink()

    staging = stacks["staging"]
    rows = staging.psql("SELECT count(*) FROM chat_message").strip()
    dump = tmp_path / "any.dump"
    dump.write_bytes(b"not even a dump")
    unscrubbed = verbs.run("restore", "--env", "staging", "--yes", str(dump), check=False)
    assert unscrubbed.returncode != 0
    assert "expected --scrub (or --real-data) to restore into the non-production stack staging" in (
        unscrubbed.stderr
    )
    assert staging.psql("SELECT count(*) FROM chat_message").strip() == rows
    assert len(staging.containers("ws")) == 2, "expected staging's ws untouched"

    production_env = (verbs.envdir / ".env").read_text()
    staging.compose("stop", "nginx")
    try:
        refused = verbs.run("promote", check=False)
        assert refused.returncode != 0
        assert "expected the staging stack healthy and its smoke check passing" in refused.stderr
        assert (verbs.envdir / ".env").read_text() == production_env
        assert not (verbs.envdir / "promotions.log").exists()
    finally:
        staging.compose("start", "nginx")
        staging.wait_healthy("nginx", 1)


async def test_promote_runs_stagings_images_in_production_with_nothing_missed(envs):
    """scripts/promote tags the image IDs staging runs; production's scripts/up runs them
    without a build, under 20 resuming readers and a sender: nothing missing or doubled."""
    verbs, stacks = envs
    production, staging = stacks["production"], stacks["staging"]
    staged = staging.inspect(staging.containers("ws")[0])["Image"]
    staged_nginx = staging.inspect(staging.containers("nginx")[0])["Image"]
    outputs = {}

    def promote_and_restart():
        verbs.run("promote")
        outputs["up"] = verbs.run("up", ENV_FILE=str(verbs.envdir / ".env")).stdout

    await run_through(production, promote_and_restart, label="promote + production up")
    assert "images: promoted" in outputs["up"] and "build: chat" not in outputs["up"]
    tag = env_value(verbs.envdir / ".env", "CHAT_TAG")
    assert (
        tag.startswith("promoted-")
        and env_value(verbs.envdir / ".env", "CHATSTACK_PROMOTED") == tag
    )
    await wait_until(lambda: len(production.containers("ws")) == 2, 60, "2 production ws")
    for service, expected in (("ws", staged), ("web", staged), ("nginx", staged_nginx)):
        running = {production.inspect(c)["Image"] for c in production.containers(service)}
        assert running == {expected}, (
            f"expected production {service} on {expected}, found {running}"
        )
    log = (verbs.envdir / "promotions.log").read_text()
    assert f"tag={tag}" in log and f"chat={staged}" in log and "commit=" in log


async def test_scrubbed_restore_keeps_ids_and_lengths_but_no_text(envs, tmp_path):
    """A production backup restored into staging with --scrub: the same rooms, ids, times and
    lengths; none of production's message texts."""
    verbs, stacks = envs
    production, staging = stacks["production"], stacks["staging"]
    secret = f"production secret {os.getpid()} 비밀"
    async with Client(production.base_url, unique_room("scrub")) as client:
        await client.send_message(secret)
        await client.recv_message(secret, 10)
    backups = tmp_path / "backups"
    verbs.run("backup", ENV_FILE=str(verbs.envdir / ".env"), BACKUP_DIR=str(backups))
    dump = next(backups.glob("chat-*.dump"))
    verbs.run("restore", "--env", "staging", "--yes", "--scrub", str(dump))
    query = "SELECT m.id, r.name, m.seq, m.sent_at, char_length(m.text) FROM chat_message m JOIN chat_room r ON r.id = m.room_id ORDER BY m.id"  # noqa: E501
    assert staging.psql(query) == production.psql(query)
    texts = set(production.psql("SELECT DISTINCT text FROM chat_message").splitlines())
    scrubbed = set(staging.psql("SELECT DISTINCT text FROM chat_message").splitlines())
    assert secret in texts, "expected the production backup to hold the secret message"
    assert not texts & scrubbed, f"expected no production text in staging, found {texts & scrubbed}"
    await check_chat(staging.base_url, room=unique_room("after-scrub"))
    print("\nverb times: " + ", ".join(f"{k} {v:.1f} s" for k, v in verbs.times.items()))
