"""nginx's own behaviour in front of the chat: headers, static files, hidden probes, limits."""

import asyncio
import json
import socket
import ssl
import subprocess

import pytest
from websockets.exceptions import InvalidStatus

from tests.functional import Client, check_chat, page_url, unique_room
from tests.native.stack import REPO, get
from tests.servers import free_port

pytestmark = pytest.mark.timeout(60)

CSP_MUST_SAY = ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'")

# The static-* cases guard against a regression: nginx's `add_header` is inherited only by
# locations that set none of their own, and `/static/` sets Cache-Control, so it must include
# security-headers.conf again or lose CSP and X-Frame-Options.


def hashed_static(topo, source):
    """The hashed name collectstatic gave `source`, from its manifest (staticfiles.json)."""
    manifest = json.loads((topo.stack.static / "staticfiles.json").read_text())
    return manifest["paths"][source]


def security_header_problems(response):
    """What is wrong with a response's security headers ([] when nothing)."""
    problems = []
    csp = response.header("Content-Security-Policy")
    if len(csp) != 1 or not all(part in csp[0] for part in CSP_MUST_SAY):
        problems.append(f"expected one Content-Security-Policy with {CSP_MUST_SAY}, found {csp}")
    nosniff = response.header("X-Content-Type-Options")
    if not nosniff or {v.strip().lower() for v in nosniff} != {"nosniff"}:
        problems.append(f"expected X-Content-Type-Options: nosniff, found {nosniff}")
    xfo = response.header("X-Frame-Options")
    if xfo != ["DENY"]:
        problems.append(f"expected X-Frame-Options: DENY, found {xfo}")
    return problems


def sample_path(topo, kind):
    return {
        "room-page": page_url("", unique_room("headers")),
        "index-page": "/chat/",
        "redirect": "/",
        "app-404": "/no-such-page",
        "nginx-health": "/nginx-health",
        "hidden-probe": "/metrics",
        "static-hashed": "/static/" + hashed_static(topo, "chat/room.js"),
        "static-404": "/static/chat/no-such-file.js",
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "room-page",
        "index-page",
        "redirect",
        "app-404",
        "nginx-health",
        "hidden-probe",
        "static-hashed",
        "static-404",
    ],
)
def test_security_headers_on_every_response(topo, kind):
    """CSP (with frame-ancestors), nosniff and X-Frame-Options on pages, static files and errors."""
    response = get(topo.nginx.base_url + sample_path(topo, kind))
    assert security_header_problems(response) == [], f"{kind}: {response.status} {response.url}"


def test_static_files_are_served_from_disk_and_cached_for_a_year(topo):
    """/static/<hashed name> comes from the collected files, cached a year, immutable, nosniff."""
    name = hashed_static(topo, "chat/room.js")
    response = get(f"{topo.nginx.base_url}/static/{name}")
    assert response.status == 200, f"expected 200 for /static/{name}, found {response.status}"
    assert response.body == (topo.stack.static / name).read_bytes()
    assert "javascript" in response.headers.get("Content-Type", "")
    cache = ", ".join(response.header("Cache-Control"))
    for part in ("max-age=31536000", "public", "immutable"):
        assert part in cache, f"expected {part!r} in Cache-Control, found {cache!r}"
    assert response.headers.get("Expires"), "expected an Expires header a year ahead"
    assert response.header("X-Content-Type-Options") == ["nosniff"]
    assert get(f"{topo.nginx.base_url}/static/chat/no-such-file.js").status == 404


def test_nginx_health(topo):
    """/nginx-health is nginx's own liveness answer."""
    response = get(topo.nginx.base_url + "/nginx-health")
    assert (response.status, response.text) == (200, "ok\n")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_hidden_behind_nginx_but_served_directly(topo, path):
    """Probes and metrics: 404 through nginx, 200 on the web probe port and on the ws port."""
    public = get(topo.nginx.base_url + path)
    assert public.status == 404, f"expected nginx to hide {path} (404), found {public.status}"
    for proc in (topo.web, topo.ws1):
        direct = get(f"http://127.0.0.1:{proc.probe_port}{path}")
        assert direct.status == 200, (
            f"expected 200 for {path} on {proc.name}:{proc.probe_port}, found {direct.status}"
        )
    if path == "/metrics":
        assert "chat_ws_connections" in get(f"http://127.0.0.1:{topo.ws1.port}{path}").text


@pytest.mark.parametrize("path", ["/metrics?format=text", "//metrics", "/%6Detrics", "/readyz/"])
def test_probe_path_variants_do_not_leak_through_nginx(topo, path):
    """Spellings that normalise to a probe path do not reach it either."""
    response = get(topo.nginx.base_url + path)
    assert response.status == 404, f"expected 404 for {path}, found {response.status}"
    assert "# TYPE" not in response.text and '"ready"' not in response.text


async def test_websockets_beyond_the_per_ip_limit_get_429(topo, spawn):
    """With NGINX_WS_CONN_PER_IP=3 the 4th concurrent socket is refused (429); freed, one fits."""
    limited = topo.stack.nginx("nginx-limit3", topo.web, topo.ws2, NGINX_WS_CONN_PER_IP="3")
    spawn(limited)
    room = unique_room("limit")
    clients = [await Client(limited.base_url, room).connect() for _ in range(3)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            await Client(limited.base_url, room).connect()
        status = refused.value.response.status_code
        assert status == 429, f"expected 429 for the 4th socket, found {status}"
        await clients.pop().close()
        # nginx frees the slot when it has seen the close: a few short tries.
        for attempt in range(20):
            try:
                clients.append(await Client(limited.base_url, room).connect())
                break
            except InvalidStatus:
                await asyncio.sleep(0.1 * (attempt + 1))
        else:
            pytest.fail("expected a socket to open again once one of the 3 was closed")
    finally:
        for client in clients:
            await client.close()
    # Pages are not counted against the WebSocket limit.
    assert get(limited.base_url + "/chat/").status == 200


def raw_request(port, head):
    """Send raw request bytes to 127.0.0.1:port; the status code nginx answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


@pytest.mark.parametrize(("size", "refused"), [(2 * 1024 * 1024, True), (1024, False)])
def test_oversize_request_body_is_refused_with_413(topo, size, refused):
    """A body over client_max_body_size (1 MiB) is refused with 413 before it is read."""
    head = (
        f"POST /chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    body = b"" if refused else b"x" * size  # the refusal comes on the headers alone
    status = raw_request(topo.nginx.port, head + body)
    if refused:
        assert status == 413, f"expected 413 for a {size}-byte body, found {status}"
    else:
        assert status != 413, f"expected a {size}-byte body to reach the app, found 413"


async def test_functional_check_over_tls(topo, spawn):
    """NGINX_TLS=on with scripts/tls-cert's certificate: the check passes over https and wss,
    the page carries HSTS, and plain HTTP redirects to HTTPS but for nginx's own health check;
    the counters the exporter reads are on the internal listener only (NGINX_STATUS_PORT)."""
    tls = topo.stack.root / "tls"
    env = {**topo.stack.env, "TLS_DIR": str(tls), "ENV_FILE": "/dev/null"}
    made = subprocess.run(
        [REPO / "scripts" / "tls-cert"], env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, f"expected scripts/tls-cert to succeed: {made.stdout}{made.stderr}"
    port = free_port()
    front = topo.stack.nginx(
        "nginx-tls",
        topo.web,
        topo.ws2,
        NGINX_TLS="on",
        NGINX_TLS_PORT=str(port),
        NGINX_PUBLIC_HTTPS_PORT=str(port),
        NGINX_TLS_CERT=str(tls / "tls.crt"),
        NGINX_TLS_KEY=str(tls / "tls.key"),
    )
    spawn(front)
    context = ssl.create_default_context(cafile=tls / "ca.crt")
    base = f"https://127.0.0.1:{port}"
    result = await check_chat(base, clients=2, ssl_context=context)
    assert result["id"] == 1

    page = get(base + "/chat/", ssl_context=context)
    hsts = page.header("Strict-Transport-Security")
    assert len(hsts) == 1 and "max-age=" in hsts[0], f"expected one HSTS header, found {hsts}"
    plain = get(front.base_url + "/chat/?x=1")
    assert (plain.status, plain.headers.get("Location")) == (301, f"{base}/chat/?x=1"), (
        f"expected a 301 to {base}/chat/?x=1, found {plain.status} {plain.headers.get('Location')}"
    )
    for url, says in (
        (front.base_url + "/nginx-health", "ok"),
        (front.status_url + "/nginx-status", "Active connections"),
    ):
        internal = get(url)
        assert (internal.status, says in internal.text) == (200, True), (
            f"expected 200 with {says!r} over plain HTTP at {url}, found {internal.status}"
        )
    for public in (front.base_url, base):
        status = get(public + "/nginx-status", ssl_context=context).status
        assert status in (301, 404), f"expected no counters at {public}, found {status}"
