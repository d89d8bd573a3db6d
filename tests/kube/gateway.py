"""A stand-in for the Gateway: what a client of https://<host>/ reaches, on 127.0.0.1 only.

The rendered Gateway terminates TLS on its HTTPS listener and hands each request to the
backend of the HTTPRoute attached there (components/gateway: everything to the Service nginx,
port 8080). This stand-in does the part that matters to nginx and the app, from the same
objects: each request's Host becomes the route's host name, X-Forwarded-Proto the listener's
protocol (https), X-Forwarded-For the client's address is appended, and the request goes to a
ready pod of the backend Service (round robin), then bytes flow both ways (WebSockets too).
Without TLS: the client speaks plain HTTP to 127.0.0.1; what nginx sees is what the Gateway
would send it. One request per connection (Connection: close on everything but an upgrade).
"""

import asyncio
import contextlib
import itertools

HEAD_LIMIT = 64 * 1024
DROPPED = {"host", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"}


def route_of(docs, route_name="chat"):
    """(host, forwarded proto, [(path prefix, service, port)]) of the HTTPRoute `route_name`
    and the Gateway listener it attaches to."""
    route = next(
        d for d in docs if d["kind"] == "HTTPRoute" and d["metadata"]["name"] == route_name
    )
    (parent,) = route["spec"]["parentRefs"]
    gateway = next(
        d for d in docs if d["kind"] == "Gateway" and d["metadata"]["name"] == parent["name"]
    )
    (listener,) = [
        lis for lis in gateway["spec"]["listeners"] if lis["name"] == parent.get("sectionName")
    ]
    proto = "https" if listener["protocol"] in ("HTTPS", "TLS") else "http"
    host = route["spec"].get("hostnames", [listener.get("hostname")])[0]
    rules = []
    for rule in route["spec"]["rules"]:
        (backend,) = rule["backendRefs"]
        for match in rule.get("matches", [{"path": {"type": "PathPrefix", "value": "/"}}]):
            path = match["path"]
            assert path["type"] == "PathPrefix", f"expected PathPrefix matches, found {path}"
            rules.append((path["value"], backend["name"], backend["port"]))
    rules.sort(key=lambda r: len(r[0]), reverse=True)
    return host, proto, rules


class Gateway:
    """async with Gateway(host, proto, rules, endpoints) as gw: gw.base_url is http://127.0.0.1:N

    `endpoints(service, port)` gives the ready [(address, port)] behind a Service, looked up
    for every connection (as the Gateway follows the Service's endpoints)."""

    def __init__(self, host, proto, rules, endpoints):
        self.host, self.proto, self.rules, self.endpoints = host, proto, rules, endpoints
        self.turn = itertools.count()
        self.backends_used = {}
        self.server = None
        self.base_url = None
        self.tasks = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        if self.tasks:  # connections the clients closed end once nginx closes its side
            _, pending = await asyncio.wait(list(self.tasks), timeout=3)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.server.wait_closed()

    def backend(self, target):
        path = target.split("?", 1)[0]
        for prefix, service, port in self.rules:
            if path.startswith(prefix):
                ready = self.endpoints(service, port)
                if not ready:
                    raise ConnectionError(f"Service {service}:{port} has no ready endpoint")
                address = ready[next(self.turn) % len(ready)]
                self.backends_used[address] = self.backends_used.get(address, 0) + 1
                return address
        raise ConnectionError(f"no rule of the HTTPRoute matches {path}")

    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        upstream = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            if len(head) > HEAD_LIMIT:
                return
            lines = head.decode("latin-1").split("\r\n")
            request_line, fields = lines[0], [ln for ln in lines[1:] if ln]
            _method, target, _ = request_line.split(" ", 2)
            headers = [tuple(f.split(":", 1)) for f in fields]
            names = {k.strip().lower() for k, _ in headers}
            upgrade = "upgrade" in names
            peer = writer.get_extra_info("peername")[0]
            kept = []
            forwarded_for = None
            for key, value in headers:
                lower = key.strip().lower()
                if lower == "x-forwarded-for":
                    forwarded_for = value.strip()
                elif lower == "connection" and not upgrade:
                    continue
                elif lower not in DROPPED:
                    kept.append(f"{key}:{value}")
            forwarded_for = f"{forwarded_for}, {peer}" if forwarded_for else peer
            out = [request_line, f"Host: {self.host}", *kept]
            out += [f"X-Forwarded-For: {forwarded_for}", f"X-Forwarded-Proto: {self.proto}"]
            if not upgrade:
                out.append("Connection: close")
            address, port = self.backend(target)
            up_reader, upstream = await asyncio.wait_for(asyncio.open_connection(address, port), 5)
            upstream.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            await asyncio.gather(pipe(reader, upstream), pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the stand-in is closing: end this connection quietly
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if upstream is not None:  # bytes may have flowed: no answer of our own then
                return
            with contextlib.suppress(OSError):
                body = f"gateway stand-in: {type(exc).__name__}: {exc}\n".encode()
                writer.write(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
        finally:
            for w in (writer, upstream):
                if w is not None:
                    with contextlib.suppress(OSError):
                        w.close()
            self.tasks.discard(task)


async def pipe(reader, writer):
    """Copy until end of file, then half-close the other side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
