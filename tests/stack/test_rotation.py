"""Secret rotation as docs/operations.md tells it, on the running stack, with pages kept up.

DJANGO_SECRET_KEY: the new key with the old one in DJANGO_SECRET_KEY_FALLBACKS, rolled out
replica by replica: values signed with the old key still verify. REDIS_PASSWORD: Redis accepts
both passwords while the workers roll over, then redis is recreated with only the new one.
"""

import asyncio
import secrets

from websockets.exceptions import ConnectionClosed

from tests.functional import check_chat

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


async def test_redis_password_rotation_without_losing_messages(stack):
    """Both passwords while web/ws roll, then redis recreated with the new one: chat works."""
    old = env_value(stack, "REDIS_PASSWORD")
    new = secrets.token_hex(32)
    try:
        stack.compose("exec", "-T", "redis", "redis-cli", "ACL", "SETUSER", "default", f">{new}")
        stack.env["REDIS_PASSWORD"] = new
        stack.script("rolling-restart", "web")
        stack.script("rolling-restart", "ws")
        await check_chat(stack.base_url, clients=4)
        stack.compose("up", "--detach", "--wait", "--no-deps", "redis")
        probe = stack.compose(
            "exec", "-T", "-e", f"REDISCLI_AUTH={old}", "redis", "redis-cli", "ping", check=False
        )
        assert "PONG" not in probe.stdout, "expected the old password refused after the rotation"
        for service in ("web", "ws"):
            stack.wait_healthy(service, 2)
        # Recreating redis is a Redis restart: a socket opened on a worker's dead pooled
        # connection is closed with 4503 and reconnects, as room.js does (test_faults.py).
        for attempt in range(10):
            try:
                await check_chat(stack.base_url, clients=4)
                break
            except ConnectionClosed:
                assert attempt < 9, "expected the chat to work again within 10 attempts"
                await asyncio.sleep(1)
    finally:
        stack.env.pop("REDIS_PASSWORD", None)
        stack.compose("up", "--detach", "--wait", "--pull", "never", timeout=300)
        stack.restore_topology()
