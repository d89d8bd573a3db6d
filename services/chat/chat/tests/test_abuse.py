"""Abuse bounds of the service (issue 14): storage only for stored messages, retention prunes
messages and the rooms they leave empty, origins compared as scheme + host + port, and one
message budget shared by all sockets of a client address."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import origins, store
from chat.models import Message, Room

from .wsclient import Client

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(queries):
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


# -- storage: a room row exists once its first message is stored -----------------------------


def test_room_page_view_writes_nothing():
    """GET /chat/<room>/ of a new room: the page (200, empty history), and no statement that
    writes; no room row appears, however many rooms are viewed."""
    http = HttpClient(HTTP_HOST="localhost")
    with CaptureQueriesContext(connection) as queries:
        for i in range(20):
            assert http.get(f"/chat/viewed-{i}/").status_code == 200
    assert writes(queries.captured_queries) == []
    assert Room.objects.count() == 0


async def test_handshake_writes_nothing(layer):
    """A socket that joins a new room and leaves: it opened (connected) and caught up with
    nothing; no room row was created. The first stored message creates it, with id 1."""
    for i in range(10):
        async with Client(f"joined-{i}") as c:
            assert c.connected
            assert await c.nothing()
    assert await Room.objects.acount() == 0
    async with Client("joined-0") as c:
        await c.send("first")
        assert (await c.recv())["id"] == 1
    assert await Room.objects.acount() == 1


def test_newest_id_of_an_emptied_room_is_zero():
    """room_last_id() is the newest stored id: 0 once retention emptied the room, so a client
    joining it cannot hold ids that a recreated room would hand out again."""
    store.append("quiet", "a")
    store.append("quiet", "b")
    assert store.room_last_id("quiet") == 2
    Message.objects.all().delete()
    assert store.room_last_id("quiet") == 0
    assert store.room_last_id("never-used") == 0


# -- retention ---------------------------------------------------------------------------------


def age(days, **filters):
    Message.objects.filter(**filters).update(sent_at=timezone.now() - timedelta(days=days))


def test_default_retention_is_not_forever():
    """The declared default keeps 30 days (0, keep forever, is an explicit choice)."""
    from django.conf import settings

    assert settings.CHAT["RETENTION_DAYS"] == 30


def test_prune_deletes_old_messages_then_rooms_left_empty(capsys):
    """Run 1: messages past retention go; the room they emptied is marked, not deleted (a socket
    may still hold its ids). Run 2, after the grace: the room row goes; a room with a recent
    message, and a marked room that got a message meanwhile, stay."""
    store.append("old", "ancient")
    store.append("mixed", "ancient")
    store.append("mixed", "recent")
    store.append("revived", "ancient")
    age(40, text="ancient")

    call_command("prune_messages", "--days", "30")
    assert sorted(Message.objects.values_list("room__name", "text")) == [("mixed", "recent")]
    assert sorted(Room.objects.values_list("name", flat=True)) == ["mixed", "old", "revived"]
    marked = set(Room.objects.filter(emptied_at__isnull=False).values_list("name", flat=True))
    assert marked == {"old", "revived"}
    assert "deleted 3 messages older than 30 days and 0 rooms" in capsys.readouterr().out

    assert store.append("revived", "back")[0] == 2  # the same room: ids go on
    Room.objects.filter(emptied_at__isnull=False).update(
        emptied_at=timezone.now() - timedelta(days=2)  # longer than a socket may live (1 day)
    )
    call_command("prune_messages", "--days", "30")
    assert sorted(Room.objects.values_list("name", flat=True)) == ["mixed", "revived"]
    assert "deleted 0 messages older than 30 days and 1 rooms" in capsys.readouterr().out
    assert store.append("old", "new life")[0] == 1  # a new room of the same name


def test_retention_zero_keeps_everything(capsys):
    """--days 0 (CHAT_RETENTION_DAYS=0): nothing is deleted, and the command says so."""
    store.append("old", "ancient")
    age(4000)
    call_command("prune_messages", "--days", "0")
    assert Message.objects.count() == 1
    assert "keep forever" in capsys.readouterr().out


def test_prune_every_runs_until_told_to_stop(tmp_path):
    """--every N: a run at once, then every N s until SIGTERM; --touch marks each run (compose's
    health check reads the file's age)."""
    mark = tmp_path / "prune.ok"
    service = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "prune_messages", "--every", "1", "--touch", str(mark)],
        cwd=service,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = timezone.now() + timedelta(seconds=30)
        while not mark.exists() and timezone.now() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert mark.exists(), "expected a first run to touch the mark file"
        first = mark.stat().st_mtime
        deadline = timezone.now() + timedelta(seconds=10)
        while mark.stat().st_mtime == first and timezone.now() < deadline:
            time.sleep(0.1)
        assert mark.stat().st_mtime > first, "expected a second run about 1 s later"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert out.count("deleted 0 messages") >= 2, out


# -- origins -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "opens"),
    [
        ("http://localhost:8080", "localhost:8080", True),  # the page's own origin
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("http://localhost:9999", "localhost:8080", False),  # another port of the same host
        ("https://127.0.0.1:1", "127.0.0.1:8080", False),
        ("https://localhost:8080", "localhost:8080", False),  # another scheme
        ("http://evil.example:8080", "evil.example:8080", False),  # host not allowed
        ("null", "localhost:8080", False),
        (None, "localhost:8080", False),
    ],
)
async def test_origin_is_scheme_host_and_port(origin, host, opens):
    """A page may open the socket only from the origin the request came to (on an allowed
    host): a page on another port or scheme of the same host gets 403 (not connected)."""
    async with Client("origins", origin=origin, host=host) as c:
        assert c.connected is opens


async def test_explicit_origins_replace_the_own_origin(settings_override):
    """CHAT_ALLOWED_ORIGINS set: exactly those (default port spelled or not) and the CSRF trusted
    origins open; the request's own origin no longer does by itself."""
    settings_override(
        CHAT_ALLOWED_ORIGINS=["https://chat.example.org"],
        CSRF_TRUSTED_ORIGINS=["https://admin.example.org:8443"],
    )
    cases = [
        ("https://chat.example.org", True),
        ("https://chat.example.org:443", True),
        ("https://admin.example.org:8443", True),
        ("http://chat.example.org", False),
        ("https://chat.example.org:8443", False),
        ("http://localhost:8080", False),
    ]
    for origin, opens in cases:
        async with Client("origins", origin=origin, host="localhost:8080") as c:
            assert c.connected is opens, origin


def test_scheme_comes_from_what_nginx_saw():
    """Behind nginx the scheme is X-Forwarded-Proto (nginx always sets it): an https page of
    the site opens when nginx says https, not when it says http."""
    scope = {
        "type": "websocket",
        "headers": [
            (b"host", b"chat.example.org"),
            (b"origin", b"https://chat.example.org"),
            (b"x-forwarded-proto", b"https"),
        ],
    }
    from django.test.utils import override_settings

    with override_settings(ALLOWED_HOSTS=["chat.example.org"]):
        assert origins.allowed(scope)
        scope["headers"][2] = (b"x-forwarded-proto", b"http")
        assert not origins.allowed(scope)


# -- one message budget per client address ---------------------------------------------------------


async def test_sockets_of_one_address_share_a_message_budget(chat_limits):
    """Two sockets of 10.0.0.1 (in two rooms) together get the address's 4 messages, then the
    sender hears rate_limited, though its own socket's budget of 3 is not spent; a socket of
    10.0.0.2 still sends at once."""
    chat_limits(
        RATE_PER_SECOND=0.01, RATE_BURST=3, ADDRESS_RATE_PER_SECOND=0.01, ADDRESS_RATE_BURST=4
    )
    async with (
        Client("budget-a", client=("10.0.0.1", 1)) as a,
        Client("budget-b", client=("10.0.0.1", 2)) as b,
        Client("budget-c", client=("10.0.0.2", 1)) as other,
    ):
        got = []
        for sender in (a, a, b, b, a):
            await sender.send("hi")
            got.append((await sender.recv()).get("code", "ok"))
        assert got == ["ok", "ok", "ok", "ok", "rate_limited"]
        await other.send("still served")
        assert (await other.recv())["message"] == "still served"
    assert await Message.objects.acount() == 5


# -- database size, for the disk alert -------------------------------------------------------------


def test_metrics_export_the_database_size(postgres):
    """/metrics on Postgres: chat_database_size_bytes is pg_database_size of the chat database
    (what DatabaseDiskFilling compares with the volume), a positive number of bytes."""
    from chat import health

    health._database_size_read[0] = float("-inf")  # read now, whatever an earlier scrape did
    text = HttpClient().get("/metrics").content.decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("chat_database_size_bytes ")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        actual = cursor.fetchone()[0]
    assert 0 < float(line.split()[1]) <= actual * 1.5, (line, actual)
