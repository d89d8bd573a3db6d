"""Upgrade from the previous version's image to the current one, with the data kept.

A second stack (its own project and volume) starts on the chat image built from the previous
version of services/chat in git history, takes messages, then `scripts/up` moves it to the
current image: migrate runs, web and ws are recreated, and the history is intact.
"""

import subprocess
import tarfile

import pytest

from tests.functional import Client, unique_room
from tests.stack.conftest import PROJECT, ROOT, Stack
from tests.stack.test_backup_restore import HISTORY

PREVIOUS_IMAGE = "chatstack/chat-previous"


def previous_service_commit():
    """The newest commit before the current state of services/chat that already had a Dockerfile."""
    commits = subprocess.run(
        ["git", "rev-list", "HEAD", "--", "services/chat"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    changed = bool(
        subprocess.run(["git", "status", "--porcelain", "services/chat"], cwd=ROOT,
                       capture_output=True, text=True, check=True).stdout.strip()
    )  # fmt: skip
    # With uncommitted changes, HEAD itself is "the previous version".
    for commit in commits if changed else commits[1:]:
        listed = subprocess.run(
            ["git", "cat-file", "-e", f"{commit}:services/chat/Dockerfile"], cwd=ROOT
        )
        if listed.returncode == 0:
            return commit
    return None


@pytest.fixture(scope="module")
def old_stack(stack, tmp_path_factory):
    """A fresh stack on the previous image (the session stack's images are built already)."""
    commit = previous_service_commit()
    assert commit, "expected a previous version of services/chat with a Dockerfile in git history"
    work = tmp_path_factory.mktemp("upgrade")
    src = work / "src"
    src.mkdir()
    archive = work / "previous.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "archive", commit, "services/chat"], cwd=ROOT, stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    python_image = next(
        line.split("=", 1)[1]
        for line in stack.env_file.read_text().splitlines()
        if line.startswith("PYTHON_IMAGE=")
    )
    stack.run(
        "docker", "build", "-q", "--build-arg", f"PYTHON_IMAGE={python_image}",
        "-t", f"{PREVIOUS_IMAGE}:latest", str(src / "services" / "chat"), timeout=900,
    )  # fmt: skip
    old = Stack(work, project=f"{PROJECT}-upgrade")
    old.env["CHAT_IMAGE"] = PREVIOUS_IMAGE
    try:
        old.script("up", "--airgap", "--no-build", timeout=600)
        old.commit = commit
        yield old
    finally:
        old.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
        old.run("docker", "image", "rm", f"{PREVIOUS_IMAGE}:latest", check=False)


async def test_upgrade_to_the_current_image_keeps_the_history(old_stack):
    """History written by the previous version survives the upgrade and a rollback; ids go on."""
    stack = old_stack
    web = stack.containers("web")
    image = stack.inspect(web[0])["Config"]["Image"]
    assert image.startswith(PREVIOUS_IMAGE), f"expected web on {PREVIOUS_IMAGE}, found {image}"
    room = unique_room("upgrade")
    async with Client(stack.base_url, room) as client:
        for i in range(3):
            await client.send_message(f"before the upgrade {i}")
            await client.recv_message(f"before the upgrade {i}", 10)
    before = stack.psql(HISTORY)

    stack.env["CHAT_IMAGE"] = "chatstack/chat"
    stack.script("up", "--no-build", timeout=600)
    for service in ("web", "ws"):
        for container in stack.containers(service):
            image = stack.inspect(container)["Config"]["Image"]
            assert image.startswith("chatstack/chat:"), (
                f"expected {service} upgraded, found {image}"
            )
    assert stack.psql(HISTORY) == before

    async with Client(stack.base_url, room, after=0) as client:
        assert await client.recv_message_ids_until(3, 10) == [1, 2, 3]
        await client.send_message("after the upgrade")
        assert (await client.recv_message("after the upgrade", 10))["id"] == 4
    after = stack.psql(HISTORY)

    # Rollback (docs/operations.md): the previous image again, on the same data.
    stack.env["CHAT_IMAGE"] = PREVIOUS_IMAGE
    stack.script("up", "--no-build", timeout=600)
    assert stack.psql(HISTORY) == after
    async with Client(stack.base_url, room, after=3) as client:
        assert await client.recv_message_ids_until(4, 10) == [4]
        await client.send_message("after the rollback")
        assert (await client.recv_message("after the rollback", 10))["id"] == 5
    print(f"\nupgrade from {stack.commit[:10]} and back: {len(after.splitlines())} rows kept")
