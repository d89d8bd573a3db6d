"""The HTTP side: pages compatible with the tutorial, safe against script injection, and probes."""

import json
import re
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client

from chat import store
from chat.tests.shards import shards_at
from tests.servers import free_port


@pytest.fixture
def http():
    return Client(HTTP_HOST="localhost")


def test_index_page(http):
    page = http.get("/chat/")
    assert page.status_code == 200
    assert b'id="room-name-input"' in page.content
    assert b"/static/chat/index.js" in page.content


@pytest.mark.parametrize("name", ["lobby", "한국어 채팅방", "a/b", "x" * 200, "q?&#%"])
def test_room_page_for_any_url_room_name(http, name):
    """The tutorial broke on Korean names (invalid response) and spaces or 99+ characters (500)."""
    page = http.get(f"/chat/{quote(name, safe='')}/")
    assert page.status_code == 200
    data = re.search(r'<script id="room-name" type="application/json">(.*?)</script>', page.text)
    assert json.loads(data.group(1)) == name


def test_room_name_reaches_javascript_as_data_not_code(http):
    """json_script, never mark_safe: a hostile room name is inert JSON and escaped HTML."""
    name = "</script><script>alert(1)</script>"
    page = http.get(f"/chat/{quote(name, safe='')}/")
    html = page.content.decode()
    assert "<script>alert(1)</script>" not in html
    data = re.search(r'<script id="room-name" type="application/json">(.*?)</script>', html)
    assert data and "\\u003C/script\\u003E" in data.group(1)
    # Every executable script is an external file: a strict CSP needs no 'unsafe-inline'.
    inline = re.findall(r"<script(?![^>]*\b(?:src|type=\"application/json\"))[^>]*>", html)
    assert inline == []
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_history_is_rendered_as_text(http):
    """Stored messages appear in the log escaped; the page resumes after the newest id."""
    store.append("hist", "<img src=x onerror=alert(1)>")
    store.append("hist", "second")
    html = http.get("/chat/hist/").content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert '<script id="last-id" type="application/json">2</script>' in html


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/chat/" + "y" * 201 + "/", "201 characters; the limit is 200"),
        ("/chat/%20%20/", "room name is empty"),
        ("/chat/bad%07bell/", "invisible character U+0007"),
    ],
)
def test_invalid_room_name_is_a_clear_400(http, path, reason):
    page = http.get(path)
    assert page.status_code == 400
    assert reason in page.content.decode()


def test_healthz_touches_nothing(http, settings_override):
    settings_override(REDIS_SHARDS=shards_at(f"redis://127.0.0.1:{free_port()}/0"))
    assert http.get("/healthz").status_code == 200


def test_readyz_reports_each_dependency(http, settings_override, redis_url):
    settings_override(REDIS_SHARDS=shards_at(redis_url))
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": "ok", "channel_layer": "ok"}


def test_readyz_is_503_when_redis_is_down(http, settings_override):
    from chat import health

    health._redis.cache_clear()
    settings_override(REDIS_SHARDS=shards_at(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        ready = http.get("/readyz")
    finally:
        health._redis.cache_clear()
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False and body["database"] == "ok"
    assert body["channel_layer"].startswith("error: ConnectionError")


def test_metrics_in_prometheus_format(http):
    text = http.get("/metrics").content.decode()
    for name in (
        "chat_ws_connections",
        "chat_messages_accepted_total",
        "chat_messages_rejected_total",
        "chat_deliveries_total",
        "chat_channel_layer_send_seconds_bucket",
        'chat_dependency_up{dependency="database"} 1.0',
    ):
        assert name in text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_answer_whatever_the_host(path):
    """Probes and Prometheus come by IP (Docker DNS, the kubelet): not in ALLOWED_HOSTS, still 200;
    pages keep refusing an unknown Host."""
    by_address = Client(HTTP_HOST="172.18.0.5:8000")
    assert by_address.get(path).status_code == 200
    assert by_address.get("/chat/").status_code == 400


def test_root_redirects_to_the_index(http):
    assert http.get("/").headers["Location"] == "/chat/"


def test_database_down_gives_a_readable_503_then_recovers(http, postgres):
    """Postgres stopped: the room page is a 503 that says so, /readyz says why; back by itself."""
    store.append("pgdown", "kept")
    postgres.stop()
    try:
        page = http.get("/chat/pgdown/")
        assert page.status_code == 503
        assert "temporarily unavailable" in page.text and page.headers["Retry-After"] == "5"
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"].startswith("error")
        assert http.get("/healthz").status_code == 200
    finally:
        postgres.start()
        # A server closes stale connections at each request start; Django's test client
        # switches that off, so the test does it (the native tier shows it through uWSGI).
        connection.close()
    page = http.get("/chat/pgdown/")
    assert page.status_code == 200 and "kept" in page.text
