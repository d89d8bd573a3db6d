"""The room page in a real Chromium (Debian's, driven by Playwright) through nginx.

Two users (two browser contexts, one behind each nginx front, so two Daphne processes and Redis
between them) chat on the room page as the tutorial has them; then room.js's exactly-once sending
(docs/protocol.md, "Sending exactly once") is shown against the real servers, with Playwright's
WebSocket routing losing a frame in each direction; a ws process restarted under the page; and
the page's choice of ws:// or wss://. What was stored is read independently of the pages: the
database's rows and a plain WebSocket client's catch-up from id 0.
"""

import asyncio
import json
import re
import signal
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
import pytest
from playwright.async_api import async_playwright, expect

from tests.functional import Client, page_url, unique_room

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root, headless, with no network beyond loopback: without the background
# networking flags it keeps trying Google's hosts (docs of this machine, /work/.library/env).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # any one wait in a page: generous, the 2 cores are shared
CHAT_SOCKET = re.compile(r"/ws/chat/")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: scripts/install-deps installs Debian's chromium",
    ),
]


@pytest.fixture
async def browser():
    """A headless Chromium for one test, with a fresh profile."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def server_logs(topo):
    """`.problems()`: ERROR records and tracebacks the Django processes logged since the start
    of this test (the whole session's are test_logs.py's)."""
    return LogWatch([topo.web, topo.ws1, topo.ws2])


class LogWatch:
    def __init__(self, procs):
        self.start = {proc: _size(proc.log) for proc in procs}

    def add(self, *procs):
        """Watch processes started by this test too, from their first line."""
        for proc in procs:
            self.start.setdefault(proc, 0)

    def problems(self):
        found = []
        for proc, offset in self.start.items():
            with proc.log.open("rb") as log:
                log.seek(offset)
                text = log.read().decode("utf-8", "replace")
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                error = isinstance(record, dict) and record.get("level") in ("ERROR", "CRITICAL")
                if error or "Traceback" in line:
                    found.append(f"{proc.name}: {line[:2000]}")
        return found


def _size(path):
    try:
        return path.stat().st_size
    except OSError:
        return 0


class RoomPage:
    """One user's tab on a room page: what its log shows, its JavaScript errors, its sockets."""

    def __init__(self, page, room):
        self.page = page
        self.room = room
        self.errors = []  # uncaught exceptions in the page (pageerror)
        self.socket_urls = []  # every WebSocket the page opened, in order
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("websocket", lambda ws: self.socket_urls.append(ws.url))

    async def send(self, text):
        """Type `text` into the input and press Enter, as a user does."""
        await self.page.fill("#chat-message-input", text)
        await self.page.press("#chat-message-input", "Enter")

    async def log(self):
        """The chat log's lines (the textarea's value)."""
        return (await self.page.input_value("#chat-log")).splitlines()

    async def shows(self, text):
        """Wait until the log shows `text`; the number of lines that are exactly `text`."""
        log = self.page.locator("#chat-log")
        await expect(log).to_have_value(re.compile(re.escape(text)), timeout=TIMEOUT_MS)
        return (await self.log()).count(text)


async def open_room(browser, base_url, room, route=None):
    """A new browser context (a user of its own) on the room page, its socket connected.

    `route(ws)` handles every chat WebSocket the page opens (page.route_web_socket).
    """
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    tab = RoomPage(page, room)
    if route is not None:
        await page.route_web_socket(CHAT_SOCKET, route)
    url = page_url(base_url, room)
    response = await page.goto(url)
    assert response is not None and response.status == 200, (
        f"expected 200 from {url} in Chromium, found {response and response.status}"
    )
    await expect(page.locator("#room-title")).to_have_text(room)
    await expect(page.locator("#chat-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    return tab


async def stored(topo, room):
    """(id, text, client_id) of every message the database holds for `room`, by id."""

    def query():
        with psycopg.connect(topo.stack.env["DATABASE_URL"], connect_timeout=5) as conn:
            return conn.execute(
                "SELECT m.seq, m.text, m.client_id FROM chat_message m "
                "JOIN chat_room r ON r.id = m.room_id WHERE r.name = %s ORDER BY m.seq",
                [room],
            ).fetchall()

    return [tuple(row) for row in await asyncio.to_thread(query)]


async def caught_up(base_url, room, last_id):
    """(id, text, client_id) of every message a plain client resuming `?after=0` receives."""
    async with Client(base_url, room, after=0) as client:
        await client.recv_message_ids_until(last_id, timeout=TIMEOUT_MS / 1000)
    return [
        (f["id"], f["message"], f.get("client_id"))
        for f in client.frames
        if f.get("type") == "message"
    ]


async def assert_stored_once(topo, room, text):
    """The room holds `text` once, with a client_id, in the database and in a catch-up; the
    stored row is returned."""
    rows = await stored(topo, room)
    mine = [row for row in rows if row[1] == text]
    assert len(mine) == 1, f"expected {text!r} stored once in room {room!r}, found rows {rows}"
    assert mine[0][2], f"expected the page to have sent a client_id, found row {mine[0]}"
    resumed = await caught_up(topo.nginx.base_url, room, rows[-1][0])
    assert resumed == rows, (
        f"expected a catch-up from id 0 to return what the database holds, {rows}; found {resumed}"
    )
    return mine[0]


async def assert_shown_once(pages, text):
    for tab in pages:
        count = await tab.shows(text)
        assert count == 1, (
            f"expected {text!r} exactly once in the chat log of a page on {tab.page.url}, "
            f"found {count} times in {await tab.log()}"
        )


def assert_clean(pages, server_logs):
    for tab in pages:
        assert not tab.errors, f"expected no JavaScript errors on {tab.page.url}: {tab.errors}"
    problems = server_logs.problems()
    assert not problems, "expected no errors in the server logs, found:\n" + "\n".join(problems)


# -- the tutorial's end to end ----------------------------------------------------------------


@pytest.mark.parametrize(
    "room",
    [None, f"a/b ?&#%+ 🙂 {uuid.uuid4().hex[:6]}"],
    ids=["unique-room", "url-special-room"],
)
async def test_two_pages_chat_through_nginx(topo, browser, server_logs, room):
    """Page A types a message and presses Enter; A and B (on the other Daphne) show it once;
    a reload renders it from history once, and the room stored it once."""
    room = room or unique_room("browser")
    a = await open_room(browser, topo.nginx.base_url, room)
    b = await open_room(browser, topo.nginx_b.base_url, room)

    text = f"hello from A {uuid.uuid4().hex[:8]} ✓ 안녕 <b>&amp;</b>"
    await a.send(text)
    await assert_shown_once([a, b], text)
    assert await a.page.input_value("#chat-message-input") == "", "expected the input cleared"

    reply = f"hello from B {uuid.uuid4().hex[:8]}"
    await b.send(reply)
    await assert_shown_once([a, b], reply)
    assert (await a.log())[-2:] == [text, reply], f"expected both in order, found {await a.log()}"

    # A new visit: both come from the server-rendered history, and the socket (resuming after
    # the newest id) adds neither again.
    await b.page.reload()
    await expect(b.page.locator("#chat-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    assert await b.log() == [text, reply], f"expected the history once, found {await b.log()}"
    after = parse_qs(urlsplit(b.socket_urls[-1]).query).get("after")
    row = await assert_stored_once(topo, room, reply)
    assert after == [str(row[0])], (
        f"expected the reloaded page to resume after id {row[0]}, found {b.socket_urls[-1]}"
    )
    await assert_stored_once(topo, room, text)
    assert await b.log() == [text, reply], f"expected nothing added, found {await b.log()}"
    assert_clean([a, b], server_logs)


# -- sending exactly once -------------------------------------------------------------------


class Sockets:
    """Routes a page's chat WebSockets: the first through `first(sockets, ws, server, socket)`,
    later ones straight to the server, recording each one's frames both ways for the test."""

    def __init__(self, first):
        self.first = first
        self.opened = []  # per socket: {"url", "sent": page->server, "received": server->page}
        self.tasks = set()

    def __call__(self, ws):
        socket = {"url": ws.url, "sent": [], "received": []}
        self.opened.append(socket)
        server = ws.connect_to_server()
        if len(self.opened) == 1:
            self.first(self, ws, server, socket)
            return

        def to_server(message):
            socket["sent"].append(json.loads(message))
            server.send(message)

        def to_page(message):
            socket["received"].append(json.loads(message))
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    def close(self, ws, server):
        """Close the page's side with 4012 (a restarting server) and the server's side."""

        async def close():
            await ws.close(code=4012, reason="lost on purpose")
            await server.close(code=1000)

        task = asyncio.get_running_loop().create_task(close())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait_for(self, predicate, what):
        """Until `predicate()` holds (checked every 50 ms), at most TIMEOUT_MS."""
        for _ in range(TIMEOUT_MS // 50):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {what} within {TIMEOUT_MS} ms; sockets: {self.opened}")


def lose_the_frame(sockets, ws, server, socket):
    """The page's first message never reaches the server; then the socket drops."""

    def to_server(message):
        frame = json.loads(message)
        if "message" in frame and not socket.get("lost"):
            socket["lost"] = frame
            sockets.close(ws, server)
            return
        socket["sent"].append(frame)
        server.send(message)

    ws.on_message(to_server)


def lose_the_echo(sockets, ws, server, socket):
    """The page's first message reaches the server; nothing the server sends after it reaches
    the page, and the socket drops once the server has echoed it (so it is stored)."""

    def to_server(message):
        frame = json.loads(message)
        socket["sent"].append(frame)
        if "message" in frame and not socket.get("lost"):
            socket["lost"] = frame
        server.send(message)

    def to_page(message):
        frame = json.loads(message)
        lost = socket.get("lost")
        if lost is None:
            socket["received"].append(frame)
            ws.send(message)
            return
        socket.setdefault("dropped", []).append(frame)
        if frame.get("client_id") == lost.get("client_id") and not socket.get("closing"):
            socket["closing"] = True
            sockets.close(ws, server)

    ws.on_message(to_server)
    server.on_message(to_page)


@pytest.mark.parametrize(
    ("first", "answer"),
    [
        pytest.param(lose_the_frame, "message", id="frame-lost"),
        pytest.param(lose_the_echo, "ack", id="echo-lost"),
    ],
)
async def test_page_resends_after_reconnect_and_the_room_stores_once(
    topo, browser, server_logs, first, answer
):
    """The first socket loses the message (frame-lost) or its echo (echo-lost) and drops with
    4012; room.js reconnects with `?after=<last id>`, sends the pending message again with the
    same client_id, the server stores it (frame-lost) or acknowledges it (echo-lost), and both
    pages show it once; the room stores it once."""
    room = unique_room("exactly-once")
    observer = await open_room(browser, topo.nginx_b.base_url, room)
    # One message before, so the resume below has an `after` other than 0 to get right.
    before = f"before {uuid.uuid4().hex[:8]}"
    await observer.send(before)
    await observer.shows(before)

    sockets = Sockets(first)
    sender = await open_room(browser, topo.nginx.base_url, room, route=sockets)
    await expect(sender.page.locator("#chat-log")).to_have_value(before + "\n")
    text = f"once {first.__name__} {uuid.uuid4().hex[:8]} ✓"
    await sender.send(text)

    await sockets.wait_for(lambda: len(sockets.opened) >= 2, "room.js to reconnect")
    lost, again = sockets.opened[:2]
    assert lost.get("lost", {}).get("message") == text, f"expected {text!r} lost, found {lost}"
    client_id = lost["lost"].get("client_id")
    assert isinstance(client_id, str) and re.fullmatch(r"[0-9a-f]{32}", client_id), (
        f"expected room.js to send a 128-bit hex client_id, found {lost['lost']}"
    )
    if first is lose_the_echo:
        assert any(f.get("client_id") == client_id for f in lost.get("dropped", [])), (
            f"expected the server to have echoed the message on the first socket, found {lost}"
        )
    # The resume: after the newest id the page had shown, the frame sent again, answered.
    before_id = (await stored(topo, room))[0][0]
    query = parse_qs(urlsplit(again["url"]).query)
    assert query.get("after") == [str(before_id)], (
        f"expected the reconnect to resume after id {before_id}, found {again['url']}"
    )

    def answers():
        return sorted(
            f.get("type")
            for f in again["received"]
            if f.get("client_id") == client_id and f.get("type") in ("message", "ack")
        )

    # frame-lost: the resend is the first time the server sees it, so it is stored and echoed.
    # echo-lost: it was stored; the resend is acknowledged, and the catch-up carries the message.
    expected = ["message"] if answer == "message" else ["ack", "message"]
    await sockets.wait_for(
        lambda: len(answers()) >= len(expected), f"the server to answer {client_id}: {expected}"
    )
    resent = [f for f in again["sent"] if f.get("client_id") == client_id]
    assert resent == [{"message": text, "client_id": client_id}], (
        f"expected the page to send {text!r} again once with the same client_id, found {again}"
    )
    assert answers() == expected, (
        f"expected the server to answer the resend with {expected}, found {answers()} in {again}"
    )

    await assert_shown_once([sender, observer], text)
    row = await assert_stored_once(topo, room, text)
    assert row[2] == client_id, f"expected the row to carry {client_id}, found {row}"
    assert await sender.log() == [before, text], f"found {await sender.log()}"
    assert await observer.log() == [before, text], f"found {await observer.log()}"
    assert answers() == expected, f"expected nothing more for {client_id}, found {again}"
    assert len(sockets.opened) == 2, f"expected one reconnect, found {sockets.opened}"
    assert_clean([sender, observer], server_logs)


# -- a restarted server ------------------------------------------------------------------------


@pytest.mark.timeout(180)  # a cold Daphne start may take up to 60 s on busy cores
async def test_page_survives_a_ws_restart_and_sends_what_was_typed_meanwhile(
    topo, spawn, browser, server_logs
):
    """The page's ws process is drained (SIGTERM: a `close` frame, then 4012) and started again
    on its port. Meanwhile the other user writes and this one types; after the reconnect both
    logs hold every message once, in order, and nothing else (no line for the close frame)."""
    tag = uuid.uuid4().hex[:6]
    ws = topo.stack.ws(f"ws-browser-{tag}")
    front = topo.stack.nginx(f"nginx-browser-{tag}", topo.web, ws)
    spawn(ws, front)  # (requested before `browser`: the pages close before these stop)
    server_logs.add(ws)
    room = unique_room("restart")
    a = await open_room(browser, front.base_url, room)
    b = await open_room(browser, topo.nginx.base_url, room)
    before = f"before the restart {tag}"
    await a.send(before)
    await assert_shown_once([a, b], before)

    ws.signal(signal.SIGTERM)
    await asyncio.to_thread(ws.wait, 30)
    await expect(a.page.locator("#chat-status")).to_contain_text("reconnecting")
    during = f"while it was down {tag}"
    await b.send(during)
    await b.shows(during)
    typed = f"typed while it was down {tag}"
    await a.send(typed)  # no open socket: kept until one opens
    assert await a.page.input_value("#chat-message-input") == ""

    again = topo.stack.ws(f"ws-browser-{tag}-again", port=ws.port)
    spawn(again)
    server_logs.add(again)
    # The backoff may have grown to 8-16 s while the new process started.
    await expect(a.page.locator("#chat-status")).to_have_text("connected", timeout=45_000)
    await assert_shown_once([a, b], typed)
    await assert_shown_once([a], during)
    before_id = (await stored(topo, room))[0][0]
    resumed = [u for u in a.socket_urls[1:] if parse_qs(urlsplit(u).query).get("after")]
    assert resumed and all(
        parse_qs(urlsplit(u).query)["after"] == [str(before_id)] for u in resumed
    ), f"expected every reconnect to resume after id {before_id}, found {a.socket_urls}"
    await assert_stored_once(topo, room, typed)
    for tab in (a, b):
        assert await tab.log() == [before, during, typed], (
            f"expected exactly the three messages in {tab.page.url}'s log, found {await tab.log()}"
        )
    assert_clean([a, b], server_logs)


# -- ws:// or wss:// ----------------------------------------------------------------------------


async def test_page_opens_ws_on_an_http_page(topo, browser, server_logs):
    """On an http:// page room.js opens ws://<the page's host>/ws/chat/<room>/?after=<id>."""
    room = f"scheme / ☃ {uuid.uuid4().hex[:6]}"
    tab = await open_room(browser, topo.nginx.base_url, room)
    assert len(tab.socket_urls) == 1, f"expected one socket, found {tab.socket_urls}"
    url = urlsplit(tab.socket_urls[0])
    page = urlsplit(topo.nginx.base_url)
    assert (url.scheme, url.netloc) == ("ws", page.netloc), f"found {tab.socket_urls[0]}"
    assert unquote(url.path) == f"/ws/chat/{room}/", f"found {tab.socket_urls[0]}"
    assert parse_qs(url.query) == {"after": ["0"]}, f"found {tab.socket_urls[0]}"
    assert_clean([tab], server_logs)


async def test_page_opens_wss_on_an_https_page(topo, browser):
    """On an https:// page room.js opens wss://. The native tier has no TLS front, so the
    https page is the real one fetched over http and fulfilled by Playwright, and the socket
    is answered by Playwright too (no server): only the page's choice of scheme is checked."""
    room = unique_room("wss")
    http = urlsplit(topo.nginx.base_url)
    https_base = f"https://{http.netloc}"
    opened = []

    async def over_http(route):
        target = route.request.url.replace(https_base, topo.nginx.base_url, 1)
        response = await route.fetch(url=target)
        await route.fulfill(response=response)

    def answer(ws):
        opened.append(ws.url)  # not connected to any server: Playwright answers the page

    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.route(f"{https_base}/**", over_http)
    await page.route_web_socket(CHAT_SOCKET, answer)
    await page.goto(page_url(https_base, room))
    assert await page.evaluate("location.protocol") == "https:"
    await expect(page.locator("#chat-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    assert len(opened) == 1, f"expected one socket, found {opened}"
    url = urlsplit(opened[0])
    assert (url.scheme, url.netloc) == ("wss", http.netloc), f"found {opened[0]}"
    assert unquote(url.path) == f"/ws/chat/{room}/", f"found {opened[0]}"
    assert not errors, f"expected no JavaScript errors, found {errors}"
