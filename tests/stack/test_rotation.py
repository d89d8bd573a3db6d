"""Secret rotation as docs/operations.md tells it, on the running stack, with pages kept up.

DJANGO_SECRET_KEY: the new key with the old one in DJANGO_SECRET_KEY_FALLBACKS, rolled out
replica by replica: values signed with the old key still verify. REDIS_PASSWORD: Redis accepts
both passwords while the workers roll over, then redis is recreated with only the new one.
"""

import asyncio
import secrets
import time

from websockets.exceptions import ConnectionClosed

from tests.functional import check_chat
from tests.stack.test_faults import run_through

SIGN = "from django.core import signing; print(signing.dumps('rotation-check'))"
VERIFY = "import sys; from django.core import signing; print(signing.loads(sys.argv[1]))"


def shell(stack, service, code, *args):
    container = stack.containers(service)[0]
    result = stack.run("docker", "exec", container, "python", "-c", code, *args, check=False)
    return result.returncode, result.stdout.strip(), result.stderr


def env_value(stack, key):
    for line in stack.env_file.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"expected {key} in {stack.env_file}")


async def test_secret_key_rotation_keeps_old_signatures_valid(stack):
    """New key + old key as fallback, rolled out: an old signature verifies; without it, not."""
    old_key = env_value(stack, "DJANGO_SECRET_KEY")
    code, token, err = shell(stack, "web", "import django; django.setup(); " + SIGN)
    assert code == 0, err
    setup = "import django; django.setup(); "
    try:
        stack.env["DJANGO_SECRET_KEY"] = secrets.token_hex(32)
        stack.env["DJANGO_SECRET_KEY_FALLBACKS"] = old_key
        stack.script("rolling-restart", "web")
        assert shell(stack, "web", setup + VERIFY, token)[1] == "rotation-check"
        await check_chat(stack.base_url, clients=2)

        stack.env["DJANGO_SECRET_KEY_FALLBACKS"] = ""
        stack.script("rolling-restart", "web")
        code, _, err = shell(stack, "web", setup + VERIFY, token)
        assert code != 0 and "BadSignature" in err, "expected the old signature refused"
    finally:
        stack.env.pop("DJANGO_SECRET_KEY", None)
        stack.env.pop("DJANGO_SECRET_KEY_FALLBACKS", None)
        stack.restore_topology()


def wait_ready(stack, service, port, timeout=60):
    """Until every container of `service` answers /readyz now (asked afresh, not the health
    status Docker recorded up to 5 s ago, which still says "healthy" right after Redis went)."""
    deadline = time.monotonic() + timeout
    for container in stack.containers(service):
        while True:
            probe = stack.run(
                "docker", "exec", container, "probe", str(port), "/readyz", check=False
            )  # fmt: skip
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, (
                f"expected {service} {container[:12]} ready within {timeout} s, found "
                f"{probe.stderr.strip()}"
            )
            time.sleep(0.5)


async def check_chat_within(stack, timeout=30):
    """The functional check, repeated until it passes; fails with the last error after `timeout`
    s. After a Redis restart each ws replica's connections to the old Redis fail once, on first
    use: a join then closes with 4503 (ConnectionClosed), and a send gets broadcast_delayed,
    so the other clients see that message only with the next one (the recv in check_chat times
    out: AssertionError). Both are documented (docs/operations.md). Retrying only the first, and
    checking at once, was this test's flake: measured, 6 of 8 checks made right after
    `up --wait redis` failed, 4 of them with the AssertionError."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            await check_chat(stack.base_url, clients=4, timeout=5)
            return attempts
        except (AssertionError, ConnectionClosed) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected the chat to work again within {timeout} s; {attempts} attempts, "
                    f"last: {type(exc).__name__}: {exc}"
                ) from exc
            await asyncio.sleep(1)


async def test_redis_password_rotation_without_losing_messages(stack):
    """Both passwords while web/ws roll, then redis recreated with the new one while clients
    chat: every stored message reaches every client once, in order, and new clients chat."""
    old = env_value(stack, "REDIS_PASSWORD")
    new = secrets.token_hex(32)
    try:
        stack.compose("exec", "-T", "redis", "redis-cli", "ACL", "SETUSER", "default", f">{new}")
        stack.env["REDIS_PASSWORD"] = new
        stack.script("rolling-restart", "web")
        stack.script("rolling-restart", "ws")
        await check_chat(stack.base_url, clients=4)

        def recreate_redis():
            stack.compose("up", "--detach", "--wait", "--no-deps", "redis")

        # Resuming clients and a steady sender through the Redis restart (test_faults.py):
        # senders may get broadcast_delayed, but every stored id reaches every client.
        await run_through(stack, recreate_redis, clients=6, label="redis password rotation")
        probe = stack.compose(
            "exec", "-T", "-e", f"REDISCLI_AUTH={old}", "redis", "redis-cli", "ping", check=False
        )
        assert "PONG" not in probe.stdout, "expected the old password refused after the rotation"
        wait_ready(stack, "web", 8081)
        wait_ready(stack, "ws", 8000)
        attempts = await check_chat_within(stack)
        print(f"functional check after the rotation: passed at attempt {attempts}")
    finally:
        stack.env.pop("REDIS_PASSWORD", None)
        stack.compose("up", "--detach", "--wait", "--pull", "never", timeout=300)
        stack.restore_topology()
