#!/usr/bin/env python3
"""The sizing tables of docs/CAPACITY.md, computed from measured unit costs (results lines).

usage: .venv/bin/python bench/sizing.py [--units] [--util 0.5] [--pod-cores 1] [--retention 30]
                                        [--set NAME=VALUE ...] [--affinity]

Every unit cost is read from the bench/results line named beside it (file:line), so the tables
change only when a line does; --set NAME=VALUE replaces one with a figure measured elsewhere
(an operator's own hardware). --units prints the unit costs and their sources.

The model (docs/CAPACITY.md, "How the tables are computed"): M messages/s = users x rate / 60;
each message is stored by its sender's ws process, published once to the room's Redis shard and
received by every ws process holding a member of the room, which delivers it to its members.
Members land on ws pods at random (no room affinity): a room of n members over P pods has
S = P (1 - (1 - 1/P)^n) subscribed pods. ws CPU = M x store + M x S x receive (one local member
included) + M x (n - S) x each further local delivery (the 500-member figure where a pod holds
100 or more members of the room, else the 20-member one). Redis CPU = M x publish(S). Postgres CPU =
M x store + page views x page. Cores are divided by the target utilisation.
"""

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def line(ref):
    name, n = ref.rsplit(":", 1)
    return json.loads((RESULTS / name).read_text().splitlines()[int(n) - 1])


# name: (results line, figure from it, what it is). Choices are explained in docs/CAPACITY.md.
UNITS = {
    "ws_us_store": (
        "capacity.jsonl:26",
        lambda r: r["ws_cpu_us_per_stored"],
        "ws CPU per message sent (receive, store, publish, its own echo), µs",
    ),
    "pg_us_store": (
        "capacity.jsonl:26",
        lambda r: 1e6 / r["stored_per_postgres_cpu_s"],
        "Postgres CPU per stored message, µs",
    ),
    "table_bytes": (
        "capacity.jsonl:26",
        lambda r: r["table_bytes_per_stored"],
        "chat_message table + indexes per message of ~150 characters, bytes",
    ),
    "wal_bytes": (
        "capacity.jsonl:26",
        lambda r: r["wal_bytes_per_stored"],
        "WAL written per stored message, bytes",
    ),
    "ws_us_receive": (
        "capacity.jsonl:20",
        lambda r: r["ws_cpu_us_per_delivery"],
        "ws CPU per message a process receives for a room with one local member, µs",
    ),
    "ws_us_small_delivery": (
        "capacity.jsonl:24",
        lambda r: r["ws_cpu_us_per_delivery"],
        "ws CPU per delivery, 20 members of a room on one process, µs",
    ),
    "ws_us_big_delivery": (
        "fanout.jsonl:37",
        lambda r: 1e6 / r["deliveries_per_cpu_s"]["daphne"],
        "ws CPU per delivery, 500 members of a room on one process, µs",
    ),
    "redis_us_publish_1": (
        "capacity.jsonl:20",
        lambda r: 1e6 / r["publishes_per_redis_cpu_s"],
        "Redis CPU per PUBLISH, 1 subscribed ws process (1 000/s), µs",
    ),
    "redis_us_per_subscriber": (
        "capacity.jsonl:11,15",
        None,  # slope between the two lines: 1 and 8 subscribed ws processes at 250/s
        "Redis CPU per further subscribed ws process per PUBLISH, µs",
    ),
    "kb_socket": (
        "idle.jsonl:44",
        lambda r: r["rss_per_connection_kb"]["daphne"],
        "ws RSS per open WebSocket (15 000 idle), KB",
    ),
    "mb_ws_base": (
        "idle.jsonl:44",
        lambda r: r["rss_before_kb"]["daphne"] / 1024,
        "ws process RSS with no socket, MB",
    ),
    "pages_web_cpu_s": (
        "http.jsonl:168",
        lambda r: r["requests_per_cpu_s"]["web"],
        "room pages per web (uWSGI 2x2) CPU-second",
    ),
    "pages_nginx_cpu_s": (
        "http.jsonl:168",
        lambda r: r["requests_per_cpu_s"]["nginx"],
        "room pages per nginx CPU-second",
    ),
    "pages_pg_cpu_s": (
        "http.jsonl:174",
        lambda r: r["requests_per_cpu_s"]["postgres"],
        "room pages per Postgres CPU-second (history query, connection upkeep)",
    ),
    "deliveries_nginx_cpu_s": (
        "rate.jsonl:15",
        lambda r: r["deliveries_per_cpu_s"]["nginx"],
        "WebSocket deliveries proxied per nginx CPU-second",
    ),
}


def units(overrides):
    out = {}
    for name, (ref, get, _) in UNITS.items():
        if get is None:
            one, eight = (line(f"capacity.jsonl:{n}") for n in ref.split(":")[1].split(","))
            k1, k8 = one["subscribers_per_channel"], eight["subscribers_per_channel"]
            us = [1e6 / r["publishes_per_redis_cpu_s"] for r in (one, eight)]
            out[name] = (us[1] - us[0]) / (k8 - k1)
        else:
            out[name] = get(line(ref))
    out.update(overrides)
    return out


def subscribed(pods, members, affinity):
    """ws pods holding members of a room: 1 with room affinity (small rooms only: a big room's
    deliveries need many pods anyway), else the expected number with members placed at random."""
    if (affinity and members < 100) or pods == 1:
        return 1.0
    return pods * (1 - (1 - 1 / pods) ** members)


def size(u, a, users, room, per_min, label):
    """One row: what `users` in rooms of `room` members sending `per_min` messages each need."""
    m = users * per_min / 60
    deliveries = m * room
    pages = users / a.page_every_s
    pods, s, ws_cores = 1, 1.0, 0.0
    for _ in range(200):  # S depends on the pods and the pods on S: iterate to a fixed point
        s = subscribed(pods, room, a.affinity)
        # Each further local delivery: the 500-member figure when a pod holds >= 100 members of
        # the room, else the 20-member one.
        extra_us = u["ws_us_big_delivery" if room / s >= 100 else "ws_us_small_delivery"]
        ws_us = u["ws_us_store"] + s * u["ws_us_receive"] + max(0.0, room - s) * extra_us
        ws_cores = m * ws_us / 1e6
        need = max(1, math.ceil(ws_cores / (a.pod_cores * a.util)))
        mem_pods = math.ceil(users * u["kb_socket"] / 1024 / (a.pod_mb - u["mb_ws_base"]))
        need = max(need, mem_pods)
        if need == pods:
            break
        pods = need
    else:  # every pod receives every message: M x receive is a pod's whole budget, or more
        return (
            [label, f"{users:,}", f"{users // room:,} × {room:,}", f"{per_min:g}", f"{m:,.0f}"]
            + [
                f"{deliveries:,.0f}",
                "all",
                "**no fixed point**: each ws pod would receive every message "
                f"({m:,.0f}/s × {u['ws_us_receive']:.0f} µs = {m * u['ws_us_receive'] / 1e6:.2f} "
                "cores, over a pod's budget)",
            ]
            + ["–"] * (len(HEAD) - 8)
        )
    redis_cores = m * (u["redis_us_publish_1"] + (s - 1) * u["redis_us_per_subscriber"]) / 1e6
    shards = max(1, math.ceil(redis_cores / a.util))
    web_cores = pages / u["pages_web_cpu_s"]
    web_pods = max(2, math.ceil(web_cores / (a.pod_cores * a.util)))
    nginx_cores = deliveries / u["deliveries_nginx_cpu_s"] + pages / u["pages_nginx_cpu_s"]
    pg_cores = m * u["pg_us_store"] / 1e6 + pages / u["pages_pg_cpu_s"]
    day = m * 86400
    return [
        label,
        f"{users:,}",
        f"{users // room:,} × {room:,}",
        f"{per_min:g}",
        f"{m:,.0f}",
        f"{deliveries:,.0f}",
        f"{s:.1f}",
        f"{ws_cores:,.1f}",
        f"**{pods:,}**",
        f"{users / pods:,.0f} / {(users / pods * u['kb_socket'] / 1024 + u['mb_ws_base']):,.0f}",
        f"{pages:,.0f} / {web_cores:.1f} / **{web_pods}**",
        f"{nginx_cores:,.1f}",
        f"{redis_cores:.2f} / **{shards}**",
        f"{pg_cores:.1f} / **{math.ceil(pg_cores / a.util)}**",
        f"{day * u['table_bytes'] / 1e9:,.0f} / {day * u['wal_bytes'] / 1e9:,.0f}",
        f"{day * u['table_bytes'] * a.retention / 1e12:,.1f}",
    ]


HEAD = [
    "shape",
    "users",
    "rooms × members",
    "msg/user/min",
    "messages/s",
    "deliveries/s",
    "ws pods per message (S)",
    "ws cores busy",
    "ws pods",
    "sockets / MB per pod",
    "pages/s / web cores / web pods",
    "nginx cores busy",
    "Redis cores / shards",
    "Postgres cores busy / at target",
    "GB per day: table / WAL",
    "TB kept",
]

ROWS = [  # (label, users, room size, messages per user per minute)
    ("small rooms", 100_000, 20, 1),
    ("small rooms", 1_000_000, 20, 1),
    ("small rooms, chatty", 100_000, 20, 6),
    ("small rooms, chatty", 1_000_000, 20, 6),
    ("big rooms, 1 msg/s per room", 100_000, 10_000, 0.006),
    ("big rooms, 1 msg/s per room", 1_000_000, 10_000, 0.006),
    ("big rooms, 10 msg/s per room", 100_000, 10_000, 0.06),
    ("big rooms, 10 msg/s per room", 1_000_000, 10_000, 0.06),
    ("big rooms, 1 msg/user/min (167 msg/s per room)", 100_000, 10_000, 1),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--util", type=float, default=0.5, help="target CPU utilisation")
    p.add_argument("--pod-cores", type=float, default=1.0, help="cores one ws/web pod uses")
    p.add_argument("--pod-mb", type=float, default=512, help="memory limit of a ws pod, MB")
    p.add_argument("--page-every-s", type=float, default=600, help="a page view per user per s")
    p.add_argument("--retention", type=float, default=30, help="days of messages kept")
    p.add_argument("--affinity", action="store_true", help="each room's members on one pod")
    p.add_argument("--units", action="store_true", help="print the unit costs and sources")
    p.add_argument("--set", action="append", default=[], help="NAME=VALUE: replace a unit cost")
    a = p.parse_args()
    u = units({k: float(v) for k, v in (s.split("=", 1) for s in a.set)})
    if a.units:
        print("| unit | value | source |\n|---|---|---|")
        for name, (ref, _, what) in UNITS.items():
            print(f"| {what} (`{name}`) | {u[name]:,.2f} | `{ref}` |")
        print()
    print("| " + " | ".join(HEAD) + " |\n|" + "---|" * len(HEAD))
    for label, users, room, per_min in ROWS:
        print("| " + " | ".join(size(u, a, users, room, per_min, label)) + " |")


if __name__ == "__main__":
    main()
