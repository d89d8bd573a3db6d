"""The web role's two servers: uWSGI (default) and gunicorn (HTTP_SERVER=gunicorn)."""

import signal
import time
from pathlib import Path

import pytest

from tests.functional import check_chat, unique_room
from tests.native.stack import get
from tests.servers import port_open, wait_for

pytestmark = pytest.mark.timeout(60)

STOP_WITHIN = 10  # seconds; far below a container's stop grace (30 s)


def children(pid):
    """PIDs whose parent is `pid` (the server's workers), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def gone(pid):
    """True once `pid` no longer runs (absent, or a zombie awaiting its new parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.parametrize("http_server", ["uwsgi", "gunicorn"])
def test_web_exits_cleanly_on_sigterm(topo, spawn, http_server):
    """SIGTERM stops the web role within seconds with status 0: workers gone, no respawn."""
    web = topo.stack.web(f"web-sigterm-{http_server}", http_server=http_server)
    spawn(web)
    page = get(f"http://127.0.0.1:{web.probe_port}/chat/")
    assert page.status == 200, f"expected the page on the probe port, found {page.status}"
    workers = wait_for(lambda: children(web.pid), 10, f"{http_server} workers of pid {web.pid}")
    before = web.log.read_text()

    started = time.monotonic()
    web.signal(signal.SIGTERM)
    status = web.wait(STOP_WITHIN)
    elapsed = time.monotonic() - started

    assert status == 0, f"expected exit status 0 after SIGTERM, found {status}\n{web.tail()}"
    wait_for(lambda: all(gone(pid) for pid in workers), 5, f"workers {workers} to exit")
    for port in (web.port, web.probe_port):
        assert not port_open(port), f"expected nothing listening on {port} after the exit"
    after = web.log.read_text()[len(before) :]
    assert "respawn" not in after.lower(), f"expected no worker respawn, found:\n{after}"
    assert "Traceback" not in after, f"expected a clean shutdown, found:\n{after}"
    print(f"{http_server}: exit {status} in {elapsed:.2f} s")


async def test_page_and_chat_through_nginx_with_gunicorn(topo, spawn):
    """HTTP_SERVER=gunicorn on both sides: nginx proxies HTTP to gunicorn; the check passes."""
    web = topo.stack.web("web-gunicorn", http_server="gunicorn")
    spawn(web)
    front = topo.stack.nginx("nginx-gunicorn", web, topo.ws2, http_server="gunicorn")
    spawn(front)
    result = await check_chat(front.base_url, clients=2, room=unique_room("gunicorn"))
    assert result["id"] == 1
    # The page really came from gunicorn (its access log), not from the uWSGI web.
    assert "GET /chat/" in web.log.read_text(), f"expected gunicorn to serve the page\n{web.tail()}"
