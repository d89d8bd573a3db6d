"""The one functional check of the chat, run through the front door exactly as a user would.

The tiers that run the product call `check_chat(base_url)`: the native processes (tests/native)
and the container tiers (the compose stack, tests/stack). The Kubernetes render tier (tests/k8s)
starts nothing and does not run it. It fetches a room page (uWSGI behind nginx), opens several
WebSockets in that room (Daphne behind nginx) and shows one message reaching every one of them
(through the Redis channel layer). The small helpers below are what scenario tests reuse.
"""

import asyncio
import contextlib
import inspect
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

__all__ = [
    "Client",
    "HttpResponse",
    "check_chat",
    "handshake_status",
    "http_get",
    "origin_of",
    "page_url",
    "room_name_in_page",
    "unique_room",
    "wait_for_http",
    "ws_url",
]

_ROOM_JSON = re.compile(r'<script id="room-name" type="application/json">(.*?)</script>', re.S)


def unique_room(prefix="func"):
    """A fresh room name with a non-ASCII part and a space, as users type them."""
    return f"{prefix} 채팅 {uuid.uuid4().hex[:8]}"


def page_url(base_url, room):
    """The room page `/chat/<room>/`, the name percent-encoded as the index page's script does."""
    return f"{base_url.rstrip('/')}/chat/{quote(room, safe='')}/"


def ws_url(base_url, room, **query):
    """`ws[s]://…/ws/chat/<room>/[?query]` for an `http[s]://` (or ws[s]://) base URL."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"expected an http(s) or ws(s) base URL, found {base_url!r}")
    path = f"{parts.path.rstrip('/')}/ws/chat/{quote(room, safe='')}/"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def origin_of(base_url):
    """The Origin a browser showing a page of `base_url` sends (scheme://host[:port])."""
    parts = urlsplit(base_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class HttpResponse:
    """What an HTTP request answered: status, headers (case-insensitive `get_all`) and body."""

    url: str
    status: int
    headers: object  # http.client.HTTPMessage
    body: bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def header(self, name):
        """The values of header `name` (every occurrence), [] when absent."""
        return self.headers.get_all(name) or []


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer to check, not something to follow silently


def http_get(url, *, timeout=10.0, ssl_context=None, headers=None, method="GET", data=None):
    """One HTTP request without following redirects; any status comes back as a response."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s) URL, found {url!r}")
    handlers = [_NoRedirect()]
    if ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=data, headers=headers or {}, method=method
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return HttpResponse(url, response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResponse(url, exc.code, exc.headers, exc.read())


def wait_for_http(url, timeout, *, status=200, ssl_context=None, interval=0.2):
    """Poll `url` until it answers `status`; fail after `timeout` s saying what was awaited.

    Synchronous (fixtures bring stacks up before any event loop runs); from a coroutine call it
    through `asyncio.to_thread`.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        try:
            response = http_get(url, timeout=min(5.0, timeout), ssl_context=ssl_context)
            if response.status == status:
                return response
            last = f"HTTP {response.status}: {response.text[:200]!r}"
        except OSError as exc:  # refused, reset, timed out: not up yet
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + interval > deadline:
            raise TimeoutError(f"waited {timeout} s for {url} to answer {status}; last: {last}")
        time.sleep(interval)


def room_name_in_page(html):
    """The room name the page hands its script through json_script, or None."""
    match = _ROOM_JSON.search(html)
    return json.loads(match.group(1)) if match else None


# -- WebSocket --------------------------------------------------------------------------------


async def handshake_status(url, *, origin=None, ssl_context=None, timeout=10.0):
    """A WebSocket handshake's HTTP status: 101 if it opened (then closed), else the refusal."""
    try:
        async with connect(url, origin=origin, ssl=ssl_context, open_timeout=timeout):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


class Client:
    """One chat WebSocket speaking docs/protocol.md; remembers every frame and the newest id.

    async with Client(base_url, room) as c: await c.send_message("hi"); await c.recv_frame()
    """

    def __init__(
        self,
        base_url,
        room,
        *,
        origin=None,
        ssl_context=None,
        open_timeout=10.0,
        max_size=2**20,
        **query,
    ):
        self.room = room
        self.url = ws_url(base_url, room, **query)
        self.origin = origin if origin is not None else origin_of(base_url)
        self.ssl_context = ssl_context
        self.open_timeout = open_timeout
        self.max_size = max_size
        self.ws = None
        self.frames = []  # every frame received, decoded
        self.last_id = 0  # newest message id received: what a client resumes after

    async def connect(self):
        kwargs = {"ssl": self.ssl_context} if self.url.startswith("wss:") else {}
        self.ws = await connect(
            self.url,
            origin=self.origin or None,
            open_timeout=self.open_timeout,
            max_size=self.max_size,
            **kwargs,
        )
        return self

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self, code=1000):
        """Close from our side; True if the server answered the close handshake."""
        if self.ws is None:
            return False
        await self.ws.close(code)
        return self.ws.close_code is not None

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj))

    async def send_message(self, text):
        await self.send_json({"message": text})

    async def send_raw(self, data):
        """A text (str) or binary (bytes) frame exactly as given."""
        await self.ws.send(data)

    async def recv_frame(self, timeout=5.0):
        """The next frame, decoded; AssertionError if none comes within `timeout` s.

        A closed connection raises websockets' ConnectionClosed (its .rcvd has the close code).
        """
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"expected a frame on {self.url} within {timeout} s; none came "
                f"(last frames: {self.frames[-3:]})"
            ) from None
        frame = json.loads(raw)
        self.frames.append(frame)
        if frame.get("type") == "message":
            self.last_id = max(self.last_id, frame["id"])
        return frame

    async def recv_message(self, text, timeout=5.0):
        """The message frame carrying `text`; frames before it are kept in .frames."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"expected message {text!r} on {self.url} within {timeout} s; "
                    f"found only {self.frames[-5:]}"
                )
            frame = await self.recv_frame(left)
            if frame.get("type") == "message" and frame.get("message") == text:
                return frame

    async def recv_message_ids_until(self, last_id, timeout=5.0):
        """Ids of the message frames received until one with id >= `last_id` (in arrival order).

        Error frames are kept in .frames but not returned.
        """
        ids = []
        deadline = time.monotonic() + timeout
        while not ids or ids[-1] < last_id:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"expected message ids up to {last_id} on {self.url} within {timeout} s; "
                    f"found {ids}"
                )
            frame = await self.recv_frame(left)
            if frame.get("type") == "message":
                ids.append(frame["id"])
        return ids

    async def closed(self, timeout=5.0):
        """Read until the server closes: (close code, detail of its `close` frame or None)."""
        detail = None
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {self.url} to be closed by the server within {timeout} s; "
                        f"it stayed open (last frames: {self.frames[-3:]})"
                    )
                frame = await self.recv_frame(left)
                if frame.get("type") == "close":
                    detail = frame.get("detail")
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), detail


# -- the check --------------------------------------------------------------------------------


async def check_chat(
    base_url: str,
    *,
    clients: int = 4,
    room: str | None = None,
    origin: str | None = None,
    ssl_context=None,
    timeout: float = 10.0,
    while_connected=None,
) -> dict:
    """Page, `clients` WebSockets in one room, one message reaching all of them; timings.

    `while_connected()` (sync or async) runs while every socket is open; its result is returned
    under "while_connected".
    """
    if clients < 1:
        raise ValueError(f"expected at least 1 client, found {clients}")
    room = room if room is not None else unique_room()
    started = time.monotonic()

    # 1. The room page, through the web role.
    url = page_url(base_url, room)
    page = await asyncio.to_thread(http_get, url, timeout=timeout, ssl_context=ssl_context)
    assert page.status == 200, (
        f"expected 200 from GET {url}, found {page.status}: {page.text[:300]}"
    )
    content_type = page.headers.get("Content-Type", "")
    assert content_type.startswith("text/html"), (
        f"expected an HTML page from {url}, found Content-Type {content_type!r}"
    )
    in_page = room_name_in_page(page.text)
    assert in_page == room, (
        f"expected the page to hand its script the room name {room!r} through json_script, "
        f"found {in_page!r}"
    )
    csp = page.header("Content-Security-Policy")
    assert csp and all("default-src" in value for value in csp), (
        f"expected a Content-Security-Policy header on {url}, found {csp}"
    )
    page_done = time.monotonic()

    # 2. The sockets, through the ws role, each one accepted (so already in the room).
    result = None
    async with contextlib.AsyncExitStack() as stack:
        conns = []
        for i in range(clients):
            client = Client(base_url, room, origin=origin, ssl_context=ssl_context)
            try:
                conns.append(await stack.enter_async_context(client))
            except InvalidStatus as exc:
                raise AssertionError(
                    f"expected client {i + 1}/{clients} to open {client.url} (Origin "
                    f"{client.origin}), found HTTP {exc.response.status_code}"
                ) from None
        connected = time.monotonic()

        # 3. Whatever the caller checks while every socket is open (e.g. spread over replicas).
        if while_connected is not None:
            result = while_connected()
            if inspect.isawaitable(result):
                result = await result
        checked = time.monotonic()

        # 4. One message, every client (the sender too) receives it with the same id.
        text = f"functional check {uuid.uuid4().hex} ✓ 안녕"
        await conns[0].send_message(text)
        frames = await asyncio.gather(*(c.recv_message(text, timeout) for c in conns))
        ids = [frame.get("id") for frame in frames]
        assert isinstance(ids[0], int) and ids[0] >= 1, (
            f"expected a positive integer message id, found {ids[0]!r} in {frames[0]}"
        )
        assert ids == [ids[0]] * clients, (
            f"expected every client to receive message id {ids[0]}, found ids {ids}"
        )
        rooms = {frame.get("room") for frame in frames}
        assert rooms == {room}, f"expected frames for room {room!r}, found {rooms}"
        delivered = time.monotonic()

        # 5. Clean closes: the server answers each close handshake.
        for i, conn in enumerate(conns):
            answered = await conn.close()
            assert answered and conn.ws.close_code == 1000, (
                f"expected client {i + 1} to close cleanly with 1000, found close code "
                f"{conn.ws.close_code}"
            )
    finished = time.monotonic()

    return {
        "room": room,
        "id": ids[0],
        "clients": clients,
        "while_connected": result,
        "timings": {
            "page": round(page_done - started, 4),
            "connect": round(connected - page_done, 4),
            "delivery": round(delivered - checked, 4),
            "close": round(finished - delivered, 4),
            "total": round(finished - started, 4),
        },
    }
