"""Per-client limits, client addresses, origins and exposure with the real nginx (issue 14).

Linux routes all of 127.0.0.0/8 to loopback, so a client socket bound to 127.0.0.2 or 127.0.0.3
is another client (or "the proxy") as far as nginx can tell.
"""

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.functional import origin_of, unique_room, ws_url
from tests.native.stack import get

pytestmark = pytest.mark.timeout(90)


async def open_socket(base_url, room, *, source="127.0.0.1", forwarded_for=None, origin=None):
    """A WebSocket from `source` (an X-Forwarded-For header if given): (101, the socket) if it
    opened, else (the refusal's HTTP status, None)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    try:
        socket = await connect(
            ws_url(base_url, room),
            origin=origin or origin_of(base_url),
            additional_headers=headers,
            local_addr=(source, 0),
            open_timeout=10,
        )
    except InvalidStatus as exc:
        return exc.response.status_code, None
    return 101, socket


async def status_of(base_url, room, **kwargs):
    """The handshake's status; a socket that opened is closed again at once."""
    status, socket = await open_socket(base_url, room, **kwargs)
    if socket is not None:
        await socket.close()
    return status


async def test_handshake_flood_from_one_client_is_refused_while_another_is_served(topo, spawn):
    """NGINX_WS_HANDSHAKES_PER_SEC=1, burst 5: of 30 quick handshakes from 127.0.0.1 the burst
    opens (101) and the rest get 429; a client at 127.0.0.2 then opens at once (101)."""
    front = topo.stack.nginx(
        "nginx-handshakes",
        topo.web,
        topo.ws2,
        NGINX_WS_HANDSHAKES_PER_SEC="1",
        NGINX_WS_HANDSHAKE_BURST="5",
    )
    spawn(front)
    room = unique_room("flood")
    started = time.monotonic()
    statuses = [await status_of(front.base_url, room) for _ in range(30)]
    elapsed = time.monotonic() - started
    opened, refused = statuses.count(101), statuses.count(429)
    # 5 of burst, plus one per second the flood took.
    assert opened <= 6 + elapsed, f"expected the burst and ~1/s to open, found {statuses}"
    assert refused >= 30 - 6 - elapsed and opened + refused == 30, statuses
    assert await status_of(front.base_url, room, source="127.0.0.2") == 101
    # The same flood's pages are a separate budget: the room page still loads.
    assert get(front.base_url + "/chat/").status == 200


async def hold(base_url, room, count, **kwargs):
    """Open `count` sockets one after another; their statuses and the open ones."""
    statuses, sockets = [], []
    for _ in range(count):
        status, socket = await open_socket(base_url, room, **kwargs)
        statuses.append(status)
        if socket is not None:
            sockets.append(socket)
    return statuses, sockets


def ws_clients(ws, room):
    """The client addresses the ws role logged for the room's connects (JSON log lines)."""
    found = []
    for line in ws.log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "connect" and record.get("room") == room:
            found.append(record["client"].rpartition(":")[0])
    return found


async def test_clients_behind_a_trusted_proxy_keep_separate_limits(topo, spawn):
    """NGINX_TRUSTED_PROXIES=127.0.0.2 and NGINX_WS_CONN_PER_IP=2. Through the proxy, two
    clients (X-Forwarded-For 198.51.100.1 and .2) each open 2 sockets and the 3rd of each gets
    429; a client that prepends another address to the proxy's header is still itself (429).
    From the untrusted 127.0.0.3, a different X-Forwarded-For per try changes nothing: 2 open,
    then 429. The ws role logs the address nginx used, never the spoofed one."""
    front = topo.stack.nginx(
        "nginx-proxied",
        topo.web,
        topo.ws2,
        NGINX_TRUSTED_PROXIES="127.0.0.2",
        NGINX_WS_CONN_PER_IP="2",
    )
    spawn(front)
    room = unique_room("proxied")
    base = front.base_url
    sockets = []
    try:
        one, held = await hold(base, room, 3, source="127.0.0.2", forwarded_for="198.51.100.1")
        sockets += held
        two, held = await hold(base, room, 3, source="127.0.0.2", forwarded_for="198.51.100.2")
        sockets += held
        assert (one, two) == ([101, 101, 429], [101, 101, 429])
        prepended = await status_of(
            base, room, source="127.0.0.2", forwarded_for="198.51.100.9, 198.51.100.1"
        )
        assert prepended == 429, "expected the proxy's own entry to count, not the client's"
        spoofed = []
        for i in range(3):
            status, socket = await open_socket(
                base, room, source="127.0.0.3", forwarded_for=f"203.0.113.{i + 1}"
            )
            spoofed.append(status)
            if socket is not None:
                sockets.append(socket)
        assert spoofed == [101, 101, 429], "expected an untrusted peer's header to be ignored"
    finally:
        for socket in sockets:
            await socket.close()
    deadline = time.monotonic() + 10
    while len(ws_clients(topo.ws2, room)) < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    seen = sorted(ws_clients(topo.ws2, room))
    assert seen == ["127.0.0.3"] * 2 + ["198.51.100.1"] * 2 + ["198.51.100.2"] * 2, seen


async def test_ws_role_sees_the_peer_not_a_spoofed_header(topo):
    """The shipped configuration trusts no proxy: a client at 127.0.0.3 sending
    X-Forwarded-For: 203.0.113.7 is logged by the ws role as 127.0.0.3."""
    room = unique_room("spoof")
    status = await status_of(
        topo.nginx.base_url, room, source="127.0.0.3", forwarded_for="203.0.113.7"
    )
    assert status == 101
    deadline = time.monotonic() + 10
    while not ws_clients(topo.ws1, room) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert ws_clients(topo.ws1, room) == ["127.0.0.3"]


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("{base}", 101),
        ("http://127.0.0.1:9999", 403),  # another port of an allowed host
        ("https://127.0.0.1:1", 403),
        ("http://localhost:{port}", 403),  # another host name than the page's own
        ("https://127.0.0.1:{port}", 403),  # another scheme
    ],
)
async def test_cross_port_origin_gets_403(topo, origin, status):
    """Through nginx, a page may open the socket only from the origin it was served at:
    the same host on another port or scheme gets 403."""
    base = topo.nginx.base_url
    origin = origin.format(base=base, port=topo.nginx.port)
    assert await status_of(base, unique_room("origin"), origin=origin) == status, origin


def test_nginx_status_only_on_the_internal_listener(topo):
    """/nginx-status: 404 on the published port (the public routes), 200 with the counters on
    NGINX_STATUS_PORT; that listener serves nothing of the chat (404)."""
    public = get(topo.nginx.base_url + "/nginx-status")
    assert public.status == 404 and "Active connections" not in public.text
    internal = get(topo.nginx.status_url + "/nginx-status")
    assert internal.status == 200 and "Active connections" in internal.text
    assert get(topo.nginx.status_url + "/chat/").status == 404
    assert get(topo.nginx.status_url + "/nginx-health").text == "ok\n"


@pytest.mark.parametrize("path", ["/chat/", "/static/chat/no-such-file.js"])
def test_csp_connect_src_is_self(topo, path):
    """Pages (the app's header) and nginx's own answers: connect-src 'self', no ws:/wss: to
    any host."""
    (csp,) = get(topo.nginx.base_url + path).header("Content-Security-Policy")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["connect-src"] == ["'self'"], csp
