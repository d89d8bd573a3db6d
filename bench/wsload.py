#!/usr/bin/env python3
"""WebSocket load client for the chat: fan-out throughput, latency under fixed rate, idle capacity.

Speaks only the tutorial's wire protocol (send {"message": <string>}, receive frames whose
"message" is that string), so the same client measures the baseline and our service. The string
carries "<sender>|<seq>|<time.time()>[|padding]"; every receiver checks, per sender, what was lost,
duplicated or out of order, and the latency from the send timestamp (one clock: 127.0.0.1 only).

Modes (one JSON line of results on stdout per run):
  fanout  S senders + N receivers in one room. --rate 0 (default): as fast as the server takes it,
          at most --window messages per sender not yet delivered to every receiver; --rate R:
          R messages/s in total, on a fixed schedule. Bounded by --messages and --timeout.
  idle    open --connections sockets across --rooms rooms, hold --hold seconds, report server RSS
          (VmRSS of every --pid) before and after, and RSS per connection.
  rooms   --rooms rooms of --members sockets each, spread over the ws processes of --url (a comma
          list); one stream of --messages messages of --size characters, message n to room
          n % rooms, at --rate per second from each room's first member, or from a publisher
          (--exec) outside the product's WebSocket path. Every member checks its room's stream.

Receivers are spread over --procs processes (the client shares 2 cores with the server, so its
cost per delivery matters): --client raw (default) is a minimal RFC 6455 client on asyncio.Protocol;
--client websockets uses the `websockets` library, for comparison of client CPU per delivery.

Server CPU: --pid NAME=PID (repeatable) is read from /proc/PID/stat (utime+stime, all threads) at
the start and end of the measured phase; the result has cpu_s per NAME and deliveries per CPU-s.
Every loop is bounded by count and by wall time; only 127.0.0.1 is accepted as a target.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from urllib.parse import urlsplit

try:
    import orjson

    loads = orjson.loads
except ImportError:  # the stdlib is slower but correct
    loads = json.loads

HIST_STEP = 1e-4  # latency histogram bucket: 0.1 ms
HIST_SIZE = 100_001  # up to 10 s; slower deliveries land in the last bucket (max is kept exactly)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- process measurements -------------------------------------------------------------------


def proc_cpu(pid):
    """utime+stime of a process (all its threads) in seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid):
    """VmRSS of a process in KiB; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_snapshot(pids):
    return {name: sum(proc_cpu(p) or 0.0 for p in plist) for name, plist in pids.items()}


def machine_busy():
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), for what others used."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children(pid):
    """Every descendant PID (uWSGI workers, nginx workers, Postgres backends)."""
    out = []
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with open(f"{task.path}/children") as f:
                for c in f.read().split():
                    out.append(int(c))
                    out.extend(children(int(c)))
    return out


def tree_cpu(pid):
    """CPU seconds of a process, its children now alive, and the children it has reaped.

    uWSGI and gunicorn replace workers (max-requests), Postgres forks a backend per connection
    and autovacuum workers: counting the tree at both ends, with what the parent collected from
    the children that exited, keeps an exited child's time.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return (proc_cpu(pid) or 0.0) + reaped + sum(proc_cpu(c) or 0.0 for c in children(pid))


def proc_runtime(pid):
    """Nanosecond-resolution CPU time of a process (every thread's /proc schedstat), in seconds.

    utime+stime count 10 ms ticks; a process using well under a second of CPU in a run (Redis
    at a few thousand publishes per second) needs this finer clock as a cross-check.
    """
    total = 0
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"{task.path}/schedstat") as f:
                total += int(f.read().split()[0])
    return total / 1e9


def own_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- a minimal RFC 6455 client ----------------------------------------------------------------


def _mask(payload, key):
    n = len(payload)
    if n == 0:
        return payload
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def client_frame(opcode, payload):
    """A masked client frame (RFC 6455 section 5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class RawWS(asyncio.Protocol):
    """One WebSocket connection: handshake, unmasked server frames in, masked frames out."""

    def __init__(self, path, host, on_text, on_close):
        self.path, self.host = path, host
        self.on_text, self.on_close = on_text, on_close
        self.buf = bytearray()
        self.upgraded = False
        self.opened = asyncio.get_running_loop().create_future()
        self.transport = None
        self.frag = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://{self.host}\r\n\r\n"
            ).encode()
        )

    def data_received(self, data):
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode("latin-1")))
                self.transport.close()
                return
            self.upgraded = True
            del buf[: end + 4]
            if not self.opened.done():
                self.opened.set_result(self)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            off = pos + 2
            if n == 126:
                if size - off < 2:
                    break
                n = int.from_bytes(buf[off : off + 2], "big")
                off += 2
            elif n == 127:
                if size - off < 8:
                    break
                n = int.from_bytes(buf[off : off + 8], "big")
                off += 8
            if b1 & 0x80:  # a masked server frame is a protocol error; skip the key anyway
                off += 4
            if size - off < n:
                break
            payload = bytes(buf[off : off + n])
            pos = off + n
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                if b0 & 0x80:
                    self.on_text(payload)
                else:
                    self.frag = [payload]
            elif opcode == 0:
                if self.frag is not None:
                    self.frag.append(payload)
                    if b0 & 0x80:
                        self.on_text(b"".join(self.frag))
                        self.frag = None
            elif opcode == 9:
                self.transport.write(client_frame(10, payload))
            elif opcode == 8:
                if not self.closed:
                    self.closed = True
                    self.transport.write(client_frame(8, payload[:2]))
                    self.on_close(self, int.from_bytes(payload[:2], "big") if n >= 2 else 1005)
                self.transport.close()
                break
        if pos:
            del buf[:pos]

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed:
            self.closed = True
            self.on_close(self, 1006)

    def send_text(self, text):
        self.transport.write(client_frame(1, text.encode()))

    async def aclose(self):
        if not self.closed:
            self.closed = True
            self.transport.write(client_frame(8, (1000).to_bytes(2, "big")))
        self.transport.close()


async def open_raw(url, on_text, on_close, timeout):
    parts = urlsplit(url)
    host = parts.netloc
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(
            lambda: RawWS(parts.path, host, on_text, on_close), parts.hostname, parts.port or 80
        ),
        timeout,
    )
    await asyncio.wait_for(proto.opened, timeout)
    return proto


class LibWS:
    """The same interface on the `websockets` library (for measuring its client cost)."""

    def __init__(self, ws, on_text, on_close):
        self.ws, self.on_text, self.on_close = ws, on_text, on_close
        self.closed = False
        self.pending = set()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self):
        with contextlib.suppress(Exception):
            async for msg in self.ws:
                self.on_text(msg)
        if not self.closed:
            self.closed = True
            self.on_close(self, self.ws.close_code or 1006)

    def send_text(self, text):
        task = asyncio.create_task(self.ws.send(text))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def aclose(self):
        self.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        self.task.cancel()


async def open_lib(url, on_text, on_close, timeout):
    import websockets

    host = urlsplit(url).netloc
    ws = await websockets.connect(
        url,
        origin=f"http://{host}",
        open_timeout=timeout,
        ping_interval=None,
        max_queue=None,
        compression=None,
    )
    return LibWS(ws, on_text, on_close)


# -- one worker process: some receivers (or the senders) -----------------------------------------


class Tracker:
    """Per-receiver, per-sender order bookkeeping, latency histogram, fully-delivered pointers."""

    def __init__(self, nconn, nsenders, max_messages, done_arr, slot):
        self.nconn, self.ns = nconn, nsenders
        self.next = [[0] * nsenders for _ in range(nconn)]
        self.pending = [[set() for _ in range(nsenders)] for _ in range(nconn)]
        self.dup = self.ooo = self.deliveries = self.foreign = 0
        self.errors = {}
        self.gotn = [[0] * max_messages for _ in range(nsenders)] if max_messages else None
        self.done = [0] * nsenders
        self.done_arr, self.slot = done_arr, slot
        self.hist = [0] * HIST_SIZE
        self.max_lat = 0.0
        self.first = self.last = None
        self.closes = {}

    def handler(self, rid):
        nxt, pend = self.next[rid], self.pending[rid]
        hist, gotn, done, ns = self.hist, self.gotn, self.done, self.ns
        done_arr, base = self.done_arr, self.slot * self.ns
        clock = time.time

        def on_text(data):
            now = clock()
            frame = None
            try:
                frame = loads(data)
                parts = frame["message"].split("|", 3)
                sender, seq, ts = int(parts[0]), int(parts[1]), float(parts[2])
            except Exception:  # noqa: BLE001 - anything not ours is counted, not fatal
                self.foreign += 1
                if isinstance(frame, dict) and frame.get("type") == "error":
                    code = frame.get("code", "?")
                    self.errors[code] = self.errors.get(code, 0) + 1
                return
            if sender >= ns:
                self.foreign += 1
                return
            self.deliveries += 1
            if self.first is None:
                self.first = now
            self.last = now
            lat = now - ts
            b = int(lat / HIST_STEP)
            hist[b if 0 <= b < HIST_SIZE else (HIST_SIZE - 1 if b > 0 else 0)] += 1
            if lat > self.max_lat:
                self.max_lat = lat
            expect = nxt[sender]
            if seq == expect:
                nxt[sender] = seq + 1
            elif seq > expect:
                pend[sender].update(range(expect, seq))
                nxt[sender] = seq + 1
            elif seq in pend[sender]:
                pend[sender].discard(seq)
                self.ooo += 1
            else:
                self.dup += 1
                return
            if gotn is not None and seq < len(gotn[sender]):
                g = gotn[sender]
                g[seq] += 1
                d = done[sender]
                if seq == d and g[seq] >= self.nconn:
                    while d < len(g) and g[d] >= self.nconn:
                        d += 1
                    done[sender] = d
                    done_arr[base + sender] = d

        return on_text

    def on_close(self, conn, code):
        self.closes[code] = self.closes.get(code, 0) + 1

    def result(self, sent, rids):
        lost = 0
        for rid in rids:
            for s in range(self.ns):
                lost += len(self.pending[rid][s]) + max(0, sent[s] - self.next[rid][s])
        hist = {i: c for i, c in enumerate(self.hist) if c}
        return {
            "deliveries": self.deliveries,
            "lost": lost,
            "duplicated": self.dup,
            "out_of_order": self.ooo,
            "foreign": self.foreign,
            "errors": self.errors,
            "hist": hist,
            "max_lat": self.max_lat,
            "first": self.first,
            "last": self.last,
            "closes": self.closes,
        }


async def open_many(urls, opener, tracker, concurrency, timeout, deadline):
    """Open every url (bounded concurrency); returns the connections that opened and the errors."""
    sem = asyncio.Semaphore(concurrency)
    conns, errors = [None] * len(urls), {}

    async def one(i, url):
        async with sem:
            if time.monotonic() > deadline:
                errors["deadline"] = errors.get("deadline", 0) + 1
                return
            try:
                conns[i] = await opener(url, tracker.handler(i), tracker.on_close, timeout)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                key = f"{type(exc).__name__}: {exc}"[:80]
                errors[key] = errors.get(key, 0) + 1

    await asyncio.gather(*(one(i, u) for i, u in enumerate(urls)))
    return conns, errors


def worker(role, slot, urls, args, shared, conn_out):
    """A process: open its connections, report ready, wait for go, (send), wait for stop, report."""
    raise_nofile()
    asyncio.run(_worker(role, slot, urls, args, shared, conn_out))


async def _worker(role, slot, urls, args, shared, conn_out):
    ready, go, stop, done_arr, sent_arr, senders_done = shared
    ns = args.senders
    opener = open_lib if (args.client == "websockets" and role == "recv") else open_raw
    max_messages = args.messages if args.mode == "fanout" else 0
    tracker = Tracker(len(urls), ns, max_messages, done_arr, slot)
    t_open = time.monotonic()
    conns, open_errors = await open_many(
        urls,
        opener,
        tracker,
        args.connect_concurrency,
        args.connect_timeout,
        t_open + args.connect_wall,
    )
    open_s = time.monotonic() - t_open
    opened = sum(c is not None for c in conns)
    if opened < len(urls):  # a missing receiver would stall the window: count only open ones
        tracker.nconn = opened
        if not opened:
            for s in range(ns):
                done_arr[slot * ns + s] = max_messages
    with ready.get_lock():
        ready.value += 1
    cpu0 = None
    loop = asyncio.get_running_loop()
    wall_end = time.monotonic() + args.timeout
    while not go.is_set() and not stop.is_set() and time.monotonic() < wall_end:
        await asyncio.sleep(0.01)
    cpu0 = own_cpu()
    send_info = {}
    if role == "send" and go.is_set():
        send_info = await send_all(conns, args, done_arr, sent_arr, stop, wall_end)
        senders_done.set()
    while not stop.is_set() and time.monotonic() < wall_end:
        await asyncio.sleep(0.02)
    cpu1 = own_cpu()
    still_open = sum(1 for c in conns if c is not None and not c.closed)
    for c in conns:
        if c is not None:
            with contextlib.suppress(Exception):
                await c.aclose()
    await asyncio.sleep(0.1)
    sent = list(sent_arr)
    res = tracker.result(sent, [i for i, c in enumerate(conns) if c is not None])
    res.update(
        role=role,
        slot=slot,
        wanted=len(urls),
        opened=opened,
        open_errors=open_errors,
        open_s=open_s,
        still_open=still_open,
        client_cpu_s=cpu1 - cpu0,
        send=send_info,
    )
    del loop
    conn_out.send(res)
    conn_out.close()


async def send_all(conns, args, done_arr, sent_arr, stop, wall_end):
    """The senders: window-limited as fast as possible, or a fixed total rate."""
    ns, nslots = args.senders, args.procs + 1
    live = [c for c in conns if c is not None]
    pad = "|" + "x" * args.pad if args.pad else ""
    late = {"max_late_s": 0.0, "window_waits": 0}

    def delivered(s):
        return min(done_arr[p * ns + s] for p in range(nslots))

    async def afap(s, conn):
        for seq in range(args.messages):
            while seq - delivered(s) >= args.window:
                if stop.is_set() or time.monotonic() > wall_end:
                    return
                late["window_waits"] += 1
                await asyncio.sleep(0.002)
            conn.send_text(f'{{"message": "{s}|{seq}|{time.time():.6f}{pad}"}}')
            sent_arr[s] = seq + 1
            if seq % 16 == 15:
                await asyncio.sleep(0)  # let the echoes in

    async def fixed(s, conn):
        interval = ns / args.rate
        start = time.monotonic() + s * interval / ns
        for seq in range(args.messages):
            due = start + seq * interval
            now = time.monotonic()
            if now > wall_end or stop.is_set():
                return
            if due > now:
                await asyncio.sleep(due - now)
            else:
                late["max_late_s"] = max(late["max_late_s"], now - due)
            conn.send_text(f'{{"message": "{s}|{seq}|{time.time():.6f}{pad}"}}')
            sent_arr[s] = seq + 1

    if len(live) < ns:
        return {"error": f"only {len(live)} of {ns} senders connected"}
    job = fixed if args.rate else afap
    t0 = time.monotonic()
    await asyncio.gather(*(job(s, live[s]) for s in range(ns)))
    late["send_s"] = time.monotonic() - t0
    return late


# -- rooms mode: many rooms, one sender per room ------------------------------------------------


class RoomTracker:
    """Members of many rooms. Room j's messages carry "j|seq|time" with seq 0, 1, 2, ... from one
    source (its first member, or --exec's publisher); every member checks order, loss and
    duplicates of its room's stream and adds the latency to the process's histogram."""

    def __init__(self, member_rooms, progress, slot):
        self.member_rooms = member_rooms
        self.next = [0] * len(member_rooms)
        self.missing = {}  # member -> seqs skipped so far (a late arrival fills its gap)
        self.deliveries = self.dup = self.ooo = self.foreign = 0
        self.errors, self.closes = {}, {}
        self.hist = [0] * HIST_SIZE
        self.max_lat = 0.0
        self.first = self.last = None
        self.progress, self.slot = progress, slot

    def handler(self, i):
        room, nxt, hist = self.member_rooms[i], self.next, self.hist

        def on_text(data):
            now = time.time()
            frame = None
            try:
                frame = loads(data)
                parts = frame["message"].split("|", 3)
                j, seq, ts = int(parts[0]), int(parts[1]), float(parts[2])
            except Exception:  # noqa: BLE001 - anything not ours is counted, not fatal
                self.foreign += 1
                if isinstance(frame, dict) and frame.get("type") == "error":
                    code = frame.get("code", "?")
                    self.errors[code] = self.errors.get(code, 0) + 1
                return
            if j != room:
                self.foreign += 1
                return
            expect = nxt[i]
            if seq == expect:
                nxt[i] = seq + 1
            elif seq > expect:
                self.missing.setdefault(i, set()).update(range(expect, seq))
                nxt[i] = seq + 1
            elif seq in self.missing.get(i, ()):
                self.missing[i].discard(seq)
                self.ooo += 1
            else:
                self.dup += 1
                return
            self.deliveries += 1
            self.progress[self.slot] = self.deliveries
            if self.first is None:
                self.first = now
            self.last = now
            lat = now - ts
            b = int(lat / HIST_STEP)
            hist[b if 0 <= b < HIST_SIZE else (HIST_SIZE - 1 if b > 0 else 0)] += 1
            self.max_lat = max(self.max_lat, lat)

        return on_text

    def on_close(self, conn, code):
        self.closes[code] = self.closes.get(code, 0) + 1


def rooms_worker(slot, args, urls, shared, conn_out):
    raise_nofile()
    asyncio.run(_rooms_worker(slot, args, urls, shared, conn_out))


def room_stream(args):
    """Message n of a run goes to room n % rooms as that room's seq n // rooms."""
    return ((n, n % args.rooms, n // args.rooms) for n in range(args.messages))


async def _rooms_worker(slot, args, urls, shared, conn_out):
    """Rooms slot, slot+procs, ...: open their members (member k of room j on urls[(j+k) % n]),
    then send this process's share of the stream (without --exec) and wait for stop."""
    ready, go, stop, progress, sent_arr = shared
    rooms = range(slot, args.rooms, args.procs)
    member_rooms = [j for j in rooms for _ in range(args.members)]
    member_urls = [
        urls[(j + k) % len(urls)].replace("{room}", f"{args.room}-{j}")
        for j in rooms
        for k in range(args.members)
    ]
    tracker = RoomTracker(member_rooms, progress, slot)
    t_open = time.monotonic()
    conns, open_errors = await open_many(
        member_urls,
        open_raw,
        tracker,
        args.connect_concurrency,
        args.connect_timeout,
        t_open + args.connect_wall,
    )
    with ready.get_lock():
        ready.value += 1
    wall_end = time.monotonic() + args.timeout
    while not go.is_set() and not stop.is_set() and time.monotonic() < wall_end:
        await asyncio.sleep(0.01)
    cpu0 = own_cpu()
    sent = {j: 0 for j in rooms}
    max_late = 0.0
    if args.exec:  # an outside publisher sends the whole stream
        for _, j, _ in room_stream(args):
            if j in sent:
                sent[j] += 1
    elif go.is_set():
        senders = {j: conns[i] for i, j in enumerate(member_rooms) if i % args.members == 0}
        start = time.monotonic()
        for n, j, seq in room_stream(args):
            if j not in sent:
                continue
            now = time.monotonic()
            if now > wall_end or stop.is_set():
                break
            due = start + n / args.rate
            if due > now:
                await asyncio.sleep(due - now)
            else:
                max_late = max(max_late, now - due)
            if senders[j] is None or senders[j].closed:
                continue
            head = f"{j}|{seq}|{time.time():.6f}|"
            text = head + "x" * max(0, args.size - len(head))
            senders[j].send_text(f'{{"message": "{text}"}}')
            sent[j] = seq + 1
            sent_arr[slot] += 1
    while not stop.is_set() and time.monotonic() < wall_end:
        await asyncio.sleep(0.02)
    cpu1 = own_cpu()
    still_open = sum(1 for c in conns if c is not None and not c.closed)
    for c in conns:
        if c is not None:
            with contextlib.suppress(Exception):
                await c.aclose()
    await asyncio.sleep(0.1)
    lost = sum(
        len(tracker.missing.get(i, ())) + max(0, sent[j] - tracker.next[i])
        for i, j in enumerate(member_rooms)
        if conns[i] is not None
    )
    conn_out.send(
        {
            "deliveries": tracker.deliveries,
            "lost": lost,
            "duplicated": tracker.dup,
            "out_of_order": tracker.ooo,
            "foreign": tracker.foreign,
            "errors": tracker.errors,
            "closes": tracker.closes,
            "hist": {i: c for i, c in enumerate(tracker.hist) if c},
            "max_lat": tracker.max_lat,
            "last": tracker.last,
            "opened": sum(c is not None for c in conns),
            "wanted": len(member_urls),
            "open_errors": open_errors,
            "still_open": still_open,
            "client_cpu_s": cpu1 - cpu0,
            "max_late_s": max_late,
        }
    )
    conn_out.close()


def main_rooms(args, pids, trees):
    """--rooms rooms of --members sockets over the ws processes of --url (a comma list); the
    stream of --messages messages at --rate per second from each room's first member, or from
    --exec (a JSON argv run once the sockets are open: the publisher). Server CPU is taken when
    the stream starts and when every member has every message (or --drain passes idle)."""
    urls = args.url.split(",")
    for url in urls:
        check_url(url)
    if not args.exec and not args.rate:
        sys.exit("wsload rooms: give --rate (members send) or --exec (a publisher sends)")
    ctx = mp.get_context("fork")
    ready, go, stop = ctx.Value("i", 0), ctx.Event(), ctx.Event()
    progress, sent_arr = ctx.RawArray("q", args.procs), ctx.RawArray("q", args.procs)
    shared = (ready, go, stop, progress, sent_arr)
    procs, pipes = [], []
    t_start = time.monotonic()
    wall_end = t_start + args.timeout
    for slot in range(args.procs):
        rx, tx = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=rooms_worker, args=(slot, args, urls, shared, tx), daemon=True)
        proc.start()
        tx.close()
        procs.append(proc)
        pipes.append(rx)
    while ready.value < args.procs and time.monotonic() < wall_end:
        time.sleep(0.02)
    t_open = time.monotonic() - t_start
    time.sleep(args.settle)  # joins and catch-ups of the last sockets finish outside the window

    def snapshot():
        return (
            cpu_snapshot(pids),
            {k: sum(proc_runtime(p) for p in v) for k, v in pids.items()},
            {k: sum(tree_cpu(p) for p in v) for k, v in trees.items()},
            {"machine": machine_busy()},
        )

    idle0 = snapshot()
    time.sleep(args.idle_window)  # what the servers cost with the sockets open and nothing sent
    before, t0 = snapshot(), time.time()
    go.set()
    load = None
    if args.exec:
        r = subprocess.run(
            json.loads(args.exec),
            capture_output=True,
            text=True,
            timeout=max(1.0, wall_end - time.monotonic()),
        )
        if r.returncode:
            print(
                f"wsload rooms: --exec failed ({r.returncode}): {r.stderr[-2000:]}", file=sys.stderr
            )
        try:
            load = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            load = {"error": (r.stdout + r.stderr)[-500:]}
    expected = args.messages * args.members
    last_progress, last_sum = time.monotonic(), -1
    while time.monotonic() < wall_end:
        time.sleep(0.01)
        done, now = sum(progress), time.monotonic()
        if done != last_sum:
            last_sum, last_progress = done, now
        if done >= expected or now - last_progress > args.drain:
            break
    after = snapshot()
    stop.set()
    results = []
    for rx, proc in zip(pipes, procs, strict=True):
        if rx.poll(max(1.0, wall_end + 30 - time.monotonic())):
            results.append(rx.recv())
        proc.join(5)
        if proc.is_alive():
            proc.kill()

    hist = {}
    for r in results:
        for b, c in r["hist"].items():
            hist[b] = hist.get(b, 0) + c
    deliveries = sum(r["deliveries"] for r in results)
    lasts = [r["last"] for r in results if r["last"]]
    active_s = (max(lasts) - t0) if lasts else None
    cpu, runtime, tree, machine = (
        {k: round(after[i][k] - before[i][k], 4) for k in before[i]} for i in range(4)
    )
    idle_cpu, idle_runtime, idle_tree, idle_machine = (
        {k: round(before[i][k] - idle0[i][k], 4) for k in before[i]} for i in range(4)
    )

    def agg(key):
        out = {}
        for r in results:
            for k, v in r[key].items():
                out[str(k)] = out.get(str(k), 0) + v
        return out

    print(
        json.dumps(
            {
                "mode": "rooms",
                "label": args.label,
                "url": args.url,
                "ws_urls": len(urls),
                "procs": args.procs,
                "rooms": args.rooms,
                "members": args.members,
                "size": args.size,
                "rate": args.rate,
                "messages": args.messages,
                "sent": load.get("published") if load else sum(sent_arr),
                "publisher": load,
                "connections": sum(r["opened"] for r in results),
                "connections_wanted": args.rooms * args.members,
                "open_errors": agg("open_errors"),
                "open_s": round(t_open, 2),
                "closes": agg("closes"),
                "still_open": sum(r["still_open"] for r in results),
                "workers_reported": len(results),
                "expected": expected,
                "deliveries": deliveries,
                "lost": sum(r["lost"] for r in results),
                "duplicated": sum(r["duplicated"] for r in results),
                "out_of_order": sum(r["out_of_order"] for r in results),
                "foreign_frames": sum(r["foreign"] for r in results),
                "error_frames": agg("errors"),
                "duration_s": round(active_s, 3) if active_s else None,
                "deliveries_per_s": round(deliveries / active_s, 1) if active_s else None,
                "latency_ms": {
                    "p50": percentile(hist, deliveries, 0.50),
                    "p99": percentile(hist, deliveries, 0.99),
                    "max": round(max((r["max_lat"] for r in results), default=0) * 1000, 2),
                },
                "server_cpu_s": {**cpu, **tree},
                "server_runtime_s": runtime,
                "machine_busy_cpu_s": machine["machine"],
                "idle_window_s": args.idle_window,
                "idle_machine_busy_cpu_s": idle_machine["machine"],
                "idle_server_cpu_s": {**idle_cpu, **idle_tree},
                "idle_server_runtime_s": idle_runtime,
                "client_cpu_s": round(sum(r["client_cpu_s"] for r in results), 3),
                "max_late_s": round(max((r["max_late_s"] for r in results), default=0), 4),
            }
        ),
        flush=True,
    )
    return 0


# -- the coordinator --------------------------------------------------------------------------


def percentile(hist, total, q):
    """Upper edge of the bucket holding the q-quantile, in ms."""
    if not total:
        return None
    rank, acc = q * total, 0
    for b in sorted(hist):
        acc += hist[b]
        if acc >= rank:
            return round((b + 1) * HIST_STEP * 1000, 2)
    return None


def check_url(url):
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname != "127.0.0.1":
        sys.exit(f"wsload: only ws://127.0.0.1 targets are allowed, found {url!r}")


def parse_pids(items):
    pids = {}
    for item in items or []:
        name, _, pid = item.partition("=")
        pids.setdefault(name, []).append(int(pid))
    return pids


def split(seq, n):
    return [seq[i::n] for i in range(n)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["fanout", "idle", "rooms"])
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws/chat/{room}/")
    p.add_argument("--receivers", type=int, default=100)
    p.add_argument("--senders", type=int, default=2)
    p.add_argument("--messages", type=int, default=2000, help="per sender")
    p.add_argument("--window", type=int, default=20, help="per sender, not yet delivered to all")
    p.add_argument(
        "--rate", type=float, default=0, help="messages/s in total; 0: as fast as it goes"
    )
    p.add_argument("--pad", type=int, default=0, help="extra characters per message")
    p.add_argument("--room", default="bench")
    p.add_argument("--connections", type=int, default=1000, help="idle mode")
    p.add_argument("--rooms", type=int, default=100, help="idle mode: rooms to spread over")
    p.add_argument("--hold", type=float, default=10, help="idle mode: seconds to hold")
    p.add_argument("--procs", type=int, default=2, help="receiver processes")
    p.add_argument("--client", choices=["raw", "websockets"], default="raw")
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument("--connect-timeout", type=float, default=20)
    p.add_argument("--connect-wall", type=float, default=120, help="give up opening after this")
    p.add_argument("--timeout", type=float, default=120, help="wall-clock bound of the run")
    p.add_argument("--drain", type=float, default=5, help="stop after this long without progress")
    p.add_argument("--pid", action="append", help="NAME=PID of a server process (repeatable)")
    p.add_argument(
        "--tree", action="append", help="NAME=PID: a process and its children (Postgres) [rooms]"
    )
    p.add_argument("--members", type=int, default=1, help="rooms mode: sockets per room")
    p.add_argument("--size", type=int, default=150, help="rooms mode: characters per message")
    p.add_argument("--exec", default="", help="rooms mode: JSON argv of the publisher to run")
    p.add_argument("--settle", type=float, default=2, help="rooms mode: seconds before go")
    p.add_argument(
        "--idle-window", type=float, default=0, help="rooms mode: seconds of idle server CPU"
    )
    p.add_argument("--label", default="", help="copied into the result")
    args = p.parse_args(argv)
    check_url(args.url)
    pids = parse_pids(args.pid)
    raise_nofile()
    if args.mode == "rooms":
        return main_rooms(args, pids, parse_pids(args.tree))

    ctx = mp.get_context("fork")
    ready = ctx.Value("i", 0)
    go, stop, senders_done = ctx.Event(), ctx.Event(), ctx.Event()
    done_arr = ctx.RawArray("q", (args.procs + 1) * args.senders)
    sent_arr = ctx.RawArray("q", args.senders)
    shared = (ready, go, stop, done_arr, sent_arr, senders_done)

    if args.mode == "fanout":
        url = args.url.replace("{room}", args.room)
        recv_urls = [url] * args.receivers
        send_urls = [url] * args.senders
    else:
        recv_urls = [
            args.url.replace("{room}", f"{args.room}-{i % args.rooms}")
            for i in range(args.connections)
        ]
        send_urls = []
        args.senders = 0
    t_start = time.monotonic()
    rss0 = {name: sum(proc_rss_kb(p) or 0 for p in plist) for name, plist in pids.items()}
    procs, pipes = [], []
    jobs = [("recv", i, urls) for i, urls in enumerate(split(recv_urls, args.procs))]
    if send_urls:
        jobs.append(("send", args.procs, send_urls))
    for role, slot, urls in jobs:
        rx, tx = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=worker, args=(role, slot, urls, args, shared, tx), daemon=True)
        proc.start()
        tx.close()
        procs.append(proc)
        pipes.append(rx)

    wall_end = t_start + args.timeout
    while ready.value < len(jobs) and time.monotonic() < wall_end:
        time.sleep(0.02)
    t_open = time.monotonic() - t_start
    cpu0, rss1 = cpu_snapshot(pids), None
    t0 = time.time()
    go.set()

    if args.mode == "fanout":
        ns, nslots = args.senders, args.procs + 1
        last_progress, last_sum = time.monotonic(), -1
        while time.monotonic() < wall_end:
            time.sleep(0.01)
            progress = sum(done_arr) + sum(sent_arr)
            now = time.monotonic()
            if progress != last_sum:
                last_sum, last_progress = progress, now
            finished = senders_done.is_set() and all(
                min(done_arr[p * ns + s] for p in range(nslots)) >= sent_arr[s] for s in range(ns)
            )
            if finished or now - last_progress > args.drain:
                break
    else:
        time.sleep(max(0.0, min(args.hold, wall_end - time.monotonic())))
        rss1 = {name: sum(proc_rss_kb(p) or 0 for p in plist) for name, plist in pids.items()}
    cpu1 = cpu_snapshot(pids)
    stop.set()

    results = []
    for rx, proc in zip(pipes, procs, strict=True):
        if rx.poll(max(1.0, wall_end + 30 - time.monotonic())):
            results.append(rx.recv())
        proc.join(5)
        if proc.is_alive():
            proc.kill()

    hist, deliveries = {}, 0
    for r in results:
        for b, c in r["hist"].items():
            hist[b] = hist.get(b, 0) + c
        deliveries += r["deliveries"]
    total = sum(hist.values())
    firsts = [r["first"] for r in results if r["first"]]
    lasts = [r["last"] for r in results if r["last"]]
    active_s = (max(lasts) - t0) if lasts else None
    server_cpu = {k: round(cpu1[k] - cpu0[k], 3) for k in cpu0}
    connections = sum(r["opened"] for r in results)
    sent = list(sent_arr)

    def agg(key):
        out = {}
        for r in results:
            for k, v in r[key].items():
                out[str(k)] = out.get(str(k), 0) + v
        return out

    out = {
        "mode": args.mode if not args.rate else "fixed-rate",
        "label": args.label,
        "url": args.url,
        "client": args.client,
        "procs": args.procs,
        "connections": connections,
        "connections_wanted": len(recv_urls) + len(send_urls),
        "open_errors": agg("open_errors"),
        "open_s": round(t_open, 2),
        "closes": agg("closes"),
        "still_open": sum(r["still_open"] for r in results),
        "workers_reported": len(results),
        "workers": len(jobs),
    }
    if args.mode == "fanout":
        expected = sum(sent) * connections
        out.update(
            receivers=args.receivers,
            senders=args.senders,
            window=args.window,
            rate=args.rate,
            sent=sum(sent),
            expected=expected,
            deliveries=deliveries,
            lost=sum(r["lost"] for r in results),
            duplicated=sum(r["duplicated"] for r in results),
            out_of_order=sum(r["out_of_order"] for r in results),
            foreign_frames=sum(r["foreign"] for r in results),
            error_frames=agg("errors"),
            duration_s=round(active_s, 3) if active_s else None,
            deliveries_per_s=round(deliveries / active_s, 1) if active_s else None,
            latency_ms={
                "p50": percentile(hist, total, 0.50),
                "p90": percentile(hist, total, 0.90),
                "p99": percentile(hist, total, 0.99),
                "max": round(max((r["max_lat"] for r in results), default=0) * 1000, 2),
            },
            server_cpu_s=server_cpu,
            deliveries_per_cpu_s={
                k: round(deliveries / v, 1) if v > 0 else None for k, v in server_cpu.items()
            },
            client_cpu_s=round(sum(r["client_cpu_s"] for r in results), 3),
            client_cpu_us_per_delivery=round(
                sum(r["client_cpu_s"] for r in results) / deliveries * 1e6, 2
            )
            if deliveries
            else None,
            sender=next((r["send"] for r in results if r["role"] == "send"), {}),
        )
        del firsts
    else:
        per_conn = {
            k: round((rss1[k] - rss0[k]) / connections, 2) if connections else None for k in rss0
        }
        out.update(
            rooms=args.rooms,
            hold_s=args.hold,
            connect_per_s=round(connections / t_open, 1) if t_open else None,
            rss_before_kb=rss0,
            rss_after_kb=rss1,
            rss_per_connection_kb=per_conn,
            server_cpu_s_while_holding=server_cpu,
        )
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
