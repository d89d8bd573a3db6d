"""HTTPS/WSS at nginx with the self-signed certificate of scripts/tls-cert, verified by clients.

The session stack runs plain HTTP; this module switches its nginx to NGINX_TLS=on (recreating
only nginx, as an operator would) and back to plain afterwards.
"""

import asyncio
import socket
import ssl

import pytest

from tests.functional import Client, check_chat, http_get, unique_room


@pytest.fixture(scope="module")
def tls(stack):
    """nginx with TLS on; yields (https base URL, SSL context trusting only our CA, CA file)."""
    stack.script("tls-cert")
    stack.env["NGINX_TLS"] = "on"
    try:
        stack.compose("up", "--detach", "--no-deps", "--force-recreate", "--wait", "nginx")
        ca_file = str(stack.tls_dir / "ca.crt")
        context = ssl.create_default_context(cafile=ca_file)
        yield f"https://127.0.0.1:{stack.https_port}", context, ca_file
    finally:
        stack.env["NGINX_TLS"] = "off"
        stack.compose("up", "--detach", "--no-deps", "--force-recreate", "--wait", "nginx")


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


def test_plain_http_redirects_to_https(stack, tls):
    """HTTP answers 301 to the same path on HTTPS; nginx's own health stays on HTTP for probes."""
    response = http_get(f"{stack.base_url}/chat/lobby/")
    assert response.status == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{stack.https_port}/chat/lobby/"
    assert http_get(f"{stack.base_url}/nginx-health").status == 200


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_https_sends_hsts_over_tls_12_and_13(tls, version):
    """Both TLS 1.2 and 1.3 clients connect (verified); HTTPS answers carry HSTS."""
    base_url, _, ca_file = tls
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = context.maximum_version = version
    response = http_get(f"{base_url}/chat/lobby/", ssl_context=context)
    assert response.status == 200
    assert response.header("Strict-Transport-Security") == ["max-age=31536000"]


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
