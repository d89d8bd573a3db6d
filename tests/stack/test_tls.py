"""Production mode: HTTPS/WSS only, with the certificate of scripts/tls-cert, verified by clients.

The session stack starts in local mode (plain HTTP on loopback, the default). This module switches
it to production mode exactly as an operator does (`scripts/tls-cert`, then
`scripts/up --production`: TLS settings written into .env, web/ws/nginx recreated with them) and
puts the local .env back afterwards. scripts/up's refusals (plain HTTP beyond loopback, a missing
or unusable certificate) are shown without an engine in tests/lint/test_up_checks.py.
"""

import asyncio
import socket
import ssl

import pytest

from tests.functional import Client, check_chat, http_get, unique_room


@pytest.fixture(scope="module")
def tls(stack):
    """The stack in production mode; yields (https base URL, SSL context trusting only our CA,
    CA file)."""
    stack.script("tls-cert")
    local_env = stack.env_file.read_text()
    try:
        up = stack.script("up", "--production", "--no-build", timeout=600)
        assert f"https://127.0.0.1:{stack.https_port}/chat/" in up.stdout, up.stdout
        ca_file = str(stack.tls_dir / "ca.crt")
        context = ssl.create_default_context(cafile=ca_file)
        yield f"https://127.0.0.1:{stack.https_port}", context, ca_file
    finally:
        stack.env_file.write_text(local_env)
        stack.restore_topology()


def served_certificate_serial(port, context):
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket,
    ):
        return tls_socket.getpeercert()["serialNumber"]


async def test_functional_check_over_https_and_wss(tls):
    """The shared check over HTTPS/WSS, the client verifying the certificate against our CA."""
    base_url, context, _ = tls
    result = await check_chat(base_url, clients=4, ssl_context=context)
    assert result["id"] >= 1


@pytest.mark.parametrize("path", ["/", "/chat/lobby/?x=1", "/static/chat/room.js", "/metrics"])
def test_plain_http_only_redirects_to_https(stack, tls, path):
    """HTTP answers every path with 301 to the same path on HTTPS, and nothing else."""
    response = http_get(f"{stack.base_url}{path}")
    assert response.status == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{stack.https_port}{path}"


def test_plain_ws_is_refused(stack, tls):
    """A ws:// handshake gets the redirect, never a socket (101); nginx's own health stays on
    HTTP for the probes inside the deployment."""
    path = "/ws/chat/lobby/"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: {stack.base_url}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as raw:
        raw.sendall(request.encode())
        head = raw.recv(4096).decode("latin-1").split("\r\n\r\n")[0].split("\r\n")
    assert head[0] == "HTTP/1.1 301 Moved Permanently"
    assert f"Location: https://127.0.0.1:{stack.https_port}{path}" in head
    assert http_get(f"{stack.base_url}/nginx-health").status == 200


def test_django_insists_on_https(stack, tls):
    """Behind nginx, Django runs with production's HTTPS settings: `check --deploy` is clean and
    a plain request that bypasses nginx is redirected to HTTPS."""
    web = stack.containers("web")[0]
    check = stack.run(
        "docker", "exec", web, "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )  # fmt: skip
    assert "no issues" in check.stdout
    code = (
        "import urllib.request as u, urllib.error as e\n"
        "class N(u.HTTPRedirectHandler):\n"
        "    def redirect_request(self, *a, **k): return None\n"
        "try: u.build_opener(N).open(u.Request('http://127.0.0.1:8000/chat/lobby/',"
        " headers={'Host': 'localhost'}), timeout=5)\n"
        "except e.HTTPError as x: print(x.code, x.headers['Location'])"
    )
    ws = stack.containers("ws")[0]
    answer = stack.run("docker", "exec", ws, "python", "-c", code).stdout.split()
    assert answer == ["301", "https://localhost/chat/lobby/"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_https_sends_hsts_over_tls_12_and_13(tls, version):
    """Both TLS 1.2 and 1.3 clients connect (verified); every HTTPS answer carries one HSTS
    header, from Django on its pages, from nginx on what it serves itself."""
    base_url, _, ca_file = tls
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = context.maximum_version = version
    page = http_get(f"{base_url}/chat/lobby/", ssl_context=context)
    assert page.status == 200
    assert page.header("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains"]
    health = http_get(f"{base_url}/nginx-health", ssl_context=context)
    assert health.header("Strict-Transport-Security") == ["max-age=31536000"]


def test_untrusted_certificate_is_refused(tls):
    """Clients verify for real: without our CA the handshake fails, so the checks above prove
    the chain, not just that something answers on the port."""
    base_url, _, _ = tls
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        http_get(f"{base_url}/nginx-health", ssl_context=ssl.create_default_context())


async def test_certificate_reload_keeps_open_websockets(stack, tls):
    """Renew the certificate and `nginx -s reload`: open WSS clients stay and keep receiving."""
    base_url, context, _ = tls
    port = stack.https_port
    before = served_certificate_serial(port, context)
    room = unique_room("reload")
    clients = [Client(base_url, room, ssl_context=context) for _ in range(5)]
    for client in clients:
        await client.connect()
    try:
        stack.script("tls-cert", "--renew")
        stack.compose("exec", "-T", "nginx", "nginx", "-c", "/tmp/nginx/nginx.conf", "-s", "reload")
        await asyncio.sleep(1)
        after = served_certificate_serial(port, context)
        assert after != before, "expected new connections to get the renewed certificate"
        await clients[0].send_message("after the reload")
        for client in clients:
            assert (await client.recv_message("after the reload", 10))["id"] == 1
    finally:
        for client in clients:
            await client.close()
