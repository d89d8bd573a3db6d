#!/usr/bin/env python3
"""Tables (Markdown) and PNG plots from bench/results/*.jsonl, for one benchmark session.

usage: .venv/bin/python bench/report.py [--session ID[,ID...]|all] [--plots DIR] [--scenarios ...]

--session  which results to use (default: the greatest session id in the files, i.e. the newest);
           a comma list, or "all" for every line (the tuning history across sessions). Ratios
           compare rows of the same session (and the same nginx) only.
--plots    write PNGs there (fanout-throughput.png, fanout-p99.png, fanout-cpu.png,
           rate-latency.png, scale.png, http.png); needs matplotlib.

Every row names its source as <scenario>.jsonl:<line> so each figure can be traced to the line
that bench/run.py appended. Nothing here is computed except ratios of two recorded figures.
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("fanout", "rate", "http", "idle", "idlecost", "scale", "capacity")


def load(scenario):
    path = RESULTS / f"{scenario}.jsonl"
    rows = []
    if path.exists():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                row["_src"] = f"{scenario}.jsonl:{n}"
                rows.append(row)
    return rows


def pick(rows, sessions):
    if sessions == ["all"]:
        return rows
    return [r for r in rows if r["session"] in sessions]


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


CAP_MS = 10000.1  # wsload's latency histogram ends at 10 s: a percentile there means "≥ 10 s"


def ratio(a, b, nd=2):
    if a is None or not b:
        return "–"
    return f"{a / b:.{nd}f}×"


def lat(v):
    if v is not None and v >= CAP_MS:
        return "≥10,000"
    return fmt(v)


def lat_ratio(a, b):
    """p99 ratio; a capped figure makes it a bound (baseline capped: ours/baseline is at most)."""
    if a is None or not b:
        return "–"
    if a is b:
        return "1.00×"
    if b >= CAP_MS and a >= CAP_MS:
        return "?"
    if b >= CAP_MS:
        return "≤" + ratio(a, b)
    if a >= CAP_MS:
        return "≥" + ratio(a, b)
    return ratio(a, b)


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def daphne_cpu(r):
    return (r.get("deliveries_per_cpu_s") or {}).get("daphne")


def label(r):
    """Stack name, plus the run's tag and the nginx used when they are not the default."""
    out = r["stack"]
    if r.get("tag"):
        out += f" [{r['tag']}]"
    if r.get("nginx_impl") == "product":
        out += " (product nginx)"
    return out


def p(r, q):
    return (r.get("latency_ms") or {}).get(q)


def baseline_for(rows, r, key):
    """The last baseline row of the same session with the same key (receivers / replicas)."""
    cands = [
        b
        for b in rows
        if b["stack"] == "baseline"
        and b["session"] == r["session"]
        and b.get("tag") == r.get("tag")
        and b.get("nginx_impl") == r.get("nginx_impl")
    ]
    cands = [b for b in cands if key(b) == key(r)]
    return cands[-1] if cands else None


def report_fanout(rows, name="fanout"):
    key = lambda r: (r.get("receivers"), r.get("nginx"))  # noqa: E731
    rows = sorted(rows, key=lambda r: (r["session"], r.get("receivers", 0), r["_src"]))
    out = []
    for r in rows:
        b = baseline_for(rows, r, key)
        out.append(
            [
                r["session"],
                label(r),
                r.get("receivers"),
                "yes" if r.get("nginx") else "no",
                f"{fmt(r.get('connections'))}/{fmt(r.get('connections_wanted'))}",
                fmt(r.get("sent")),
                f"{fmt(r.get('deliveries'))}/{fmt(r.get('expected'))}",
                fmt(r.get("lost")),
                fmt(r.get("duplicated")),
                fmt(r.get("deliveries_per_s")),
                fmt(daphne_cpu(r)),
                ratio(daphne_cpu(r), daphne_cpu(b) if b else None),
                lat(p(r, "p50")),
                lat(p(r, "p99")),
                lat_ratio(p(r, "p99"), p(b, "p99") if b else None),
                r["_src"],
            ]
        )
    head = [
        "session",
        "stack",
        "receivers",
        "nginx",
        "sockets open/wanted",
        "sent",
        "delivered/expected",
        "lost",
        "dup",
        "deliveries/s",
        "deliveries per Daphne CPU-s",
        "× baseline",
        "p50 ms",
        "p99 ms",
        "p99 × baseline",
        "source",
    ]
    return f"### {name}\n\n" + table(head, out)


def report_rate(rows):
    key = lambda r: (r.get("receivers"), r.get("nginx"))  # noqa: E731
    out = []
    for r in rows:
        b = baseline_for(rows, r, key)
        out.append(
            [
                r["session"],
                label(r),
                r.get("replicas", 1),
                "yes" if r.get("nginx") else "no",
                r.get("receivers"),
                f"{fmt(r.get('connections'))}/{fmt(r.get('connections_wanted'))}",
                fmt(r.get("duration_s")),
                f"{fmt(r.get('deliveries'))}/{fmt(r.get('expected'))}",
                fmt(r.get("lost")),
                fmt(r.get("duplicated")),
                fmt(r.get("deliveries_per_s")),
                lat(p(r, "p50")),
                lat(p(r, "p90")),
                lat(p(r, "p99")),
                fmt(p(r, "max"), 1),
                lat_ratio(p(r, "p99"), p(b, "p99") if b else None),
                fmt(daphne_cpu(r)),
                r["_src"],
            ]
        )
    head = [
        "session",
        "stack",
        "replicas",
        "nginx",
        "receivers",
        "sockets open/wanted",
        "s",
        "delivered/expected",
        "lost",
        "dup",
        "deliveries/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p99 × baseline",
        "deliveries per Daphne CPU-s",
        "source",
    ]
    return "### rate\n\n" + table(head, out)


def report_http(rows):
    out = []
    for r in rows:
        base = [
            b
            for b in rows
            if b["session"] == r["session"]
            and b["stack"] == "baseline-daphne"
            and b.get("nginx_impl") == r.get("nginx_impl")
        ]
        b = base[-1] if base else None
        lat = r.get("latency") or {}
        out.append(
            [
                r["session"],
                label(r),
                fmt(r.get("requests")),
                fmt(r.get("requests_per_s")),
                ratio(r.get("requests_per_s"), b.get("requests_per_s") if b else None),
                lat.get("50", "–"),
                lat.get("99", "–"),
                fmt(r.get("non_2xx")),
                r.get("socket_errors") or "–",
                ", ".join(f"{k} {v}" for k, v in (r.get("server_cpu_s") or {}).items()),
                r.get("page_bytes", "–"),
                r["_src"],
            ]
        )
    head = [
        "session",
        "stack",
        "requests",
        "req/s",
        "× baseline Daphne",
        "p50",
        "p99",
        "non-2xx",
        "socket errors",
        "server CPU s",
        "page bytes",
        "source",
    ]
    return "### http (wrk, room page /chat/lobby/)\n\n" + table(head, out)


def report_capacity(rows):
    """bench/run.py capacity: the data tier's unit costs, one row per run (docs/CAPACITY.md)."""
    out = []
    for r in rows:
        load = f"{r['loadavg_start'][0]} → {r['loadavg_end'][0]}"
        out.append(
            [
                r["session"],
                r["measure"],
                r["replicas"],
                r["members"],
                fmt(r.get("rate") or (r.get("publisher") or {}).get("published", 0) / 60),
                fmt(r["stored"]),
                fmt(r["publishes"]),
                fmt(r["subscribers_per_channel"]),
                f"{fmt(r['deliveries'])}/{fmt(r['expected'])}",
                fmt(r["lost"]),
                lat(p(r, "p99")),
                fmt(r["stored_per_postgres_cpu_s"]),
                fmt(r["ws_cpu_us_per_stored"]),
                fmt(r["ws_cpu_us_per_delivery"]),
                fmt(r["publishes_per_redis_cpu_s"]),
                fmt(r["publishes_per_redis_runtime_s"]),
                fmt(r["subscriber_deliveries_per_redis_cpu_s"]),
                fmt(r["table_bytes_per_stored"]),
                fmt(r["wal_bytes_per_stored"]),
                load,
                fmt(r.get("other_cpu_s")),
                r["_src"],
            ]
        )
    head = [
        "session",
        "measure",
        "ws processes",
        "sockets/room",
        "msg/s",
        "stored",
        "PUBLISH",
        "subscribers/channel",
        "delivered/expected",
        "lost",
        "p99 ms",
        "stored per Postgres CPU-s",
        "ws µs per stored",
        "ws µs per delivery",
        "PUBLISH per Redis CPU-s",
        "(schedstat)",
        "subscriber deliveries per Redis CPU-s",
        "table+index B/msg",
        "WAL B/msg",
        "load 1 min",
        "other CPU-s",
        "source",
    ]
    return "### capacity (data tier unit costs)\n\n" + table(head, out)


def report_idle(rows, name):
    out = []
    for r in rows:
        rss = (r.get("rss_per_connection_kb") or {}).get("daphne")
        before = (r.get("rss_before_kb") or {}).get("daphne")
        after = (r.get("rss_after_kb") or {}).get("daphne")
        out.append(
            [
                r["session"],
                label(r),
                fmt(r.get("connections_wanted")),
                fmt(r.get("still_open")),
                json.dumps(r.get("open_errors") or {}),
                json.dumps(r.get("closes") or {}),
                fmt(r.get("open_s")),
                fmt(r.get("connect_per_s")),
                fmt(before),
                fmt(after),
                fmt(rss, 2),
                fmt((r.get("server_cpu_s_while_holding") or {}).get("daphne"), 2),
                r["_src"],
            ]
        )
    head = [
        "session",
        "stack",
        "wanted",
        "still open",
        "open errors",
        "closes",
        "open s",
        "connect/s",
        "RSS before KB",
        "RSS after KB",
        "RSS per connection KB",
        "CPU s while holding",
        "source",
    ]
    return f"### {name}\n\n" + table(head, out)


def report_scale(rows):
    out = []
    for r in rows:
        one = [
            o
            for o in rows
            if o["session"] == r["session"] and o["stack"] == r["stack"] and o.get("replicas") == 1
        ]
        o = one[-1] if one else None
        cpu = (r.get("server_cpu_s") or {}).get("daphne")
        out.append(
            [
                r["session"],
                label(r),
                r.get("replicas"),
                r.get("receivers"),
                f"{fmt(r.get('deliveries'))}/{fmt(r.get('expected'))}",
                fmt(r.get("lost")),
                fmt(r.get("duplicated")),
                fmt(r.get("deliveries_per_s")),
                ratio(r.get("deliveries_per_s"), o.get("deliveries_per_s") if o else None),
                fmt(cpu, 2),
                fmt(daphne_cpu(r)),
                lat(p(r, "p99")),
                r["_src"],
            ]
        )
    head = [
        "session",
        "stack",
        "replicas",
        "receivers",
        "delivered/expected",
        "lost",
        "dup",
        "deliveries/s",
        "× 1 replica",
        "Daphne CPU s (all)",
        "deliveries per Daphne CPU-s",
        "p99 ms",
        "source",
    ]
    return "### scale (through nginx)\n\n" + table(head, out)


def plots(data, outdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    fan = [r for r in data.get("fanout", []) if not r.get("nginx") and not r.get("tag")]
    if fan:
        by = defaultdict(list)
        for r in fan:
            by[r["stack"]].append(r)
        for fname, ylabel, get, log in (
            ("fanout-throughput.png", "deliveries/s", lambda r: r.get("deliveries_per_s"), False),
            ("fanout-p99.png", "p99 latency, ms (log)", lambda r: p(r, "p99"), True),
            ("fanout-cpu.png", "deliveries per Daphne CPU-second", daphne_cpu, False),
        ):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for stack, rs in sorted(by.items()):
                rs = sorted(rs, key=lambda r: r["receivers"])
                style = "k--o" if stack == "baseline" else "-o"
                ax.plot([r["receivers"] for r in rs], [get(r) for r in rs], style, label=stack)
            ax.set_xscale("log")
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("receivers in one room (2 senders, as fast as possible)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"fanout, session {fan[0]['session']}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
            fig.tight_layout()
            fig.savefig(outdir / fname, dpi=110)
            plt.close(fig)
            written.append(outdir / fname)
    rate = data.get("rate", [])
    if rate:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        labels = [label(r).replace(" (", "\n(") for r in rate]
        xs = range(len(rate))
        for q, off in (("p50", -0.25), ("p90", 0), ("p99", 0.25)):
            ax.bar([x + off for x in xs], [p(r, q) or 0 for r in rate], 0.25, label=q)
        ax.axhline(50, color="red", lw=1, ls="--", label="target p99 50 ms")
        ax.set_yscale("log")
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(f"500 receivers, 2000 deliveries/s via nginx, session {rate[0]['session']}")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(outdir / "rate-latency.png", dpi=110)
        plt.close(fig)
        written.append(outdir / "rate-latency.png")
    http = data.get("http", [])
    if http:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.bar(range(len(http)), [r.get("requests_per_s") or 0 for r in http])
        ax.set_xticks(
            range(len(http)), [label(r).replace(" (", "\n(") for r in http], rotation=20, fontsize=7
        )
        ax.set_ylabel("requests/s (wrk)")
        ax.set_title(f"room page, session {http[0]['session']}")
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(outdir / "http.png", dpi=110)
        plt.close(fig)
        written.append(outdir / "http.png")
    scale = data.get("scale", [])
    if scale:
        by = defaultdict(list)
        for r in scale:
            by[r["stack"]].append(r)
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for stack, rs in sorted(by.items()):
            rs = sorted(rs, key=lambda r: r["replicas"])
            ax.plot(
                [r["replicas"] for r in rs], [r["deliveries_per_s"] for r in rs], "-o", label=stack
            )
        ax.set_xlabel("ws replicas behind nginx (2-core machine)")
        ax.set_ylabel("deliveries/s")
        ax.set_title(f"scale, 500 receivers, session {scale[0]['session']}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / "scale.png", dpi=110)
        plt.close(fig)
        written.append(outdir / "scale.png")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--session", default=None)
    ap.add_argument("--plots", metavar="DIR")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), type=lambda s: s.split(","))
    args = ap.parse_args()
    all_rows = {s: load(s) for s in args.scenarios}
    if args.session is None:
        sessions = [r["session"] for rows in all_rows.values() for r in rows]
        if not sessions:
            sys.exit("no results")
        args.session = max(sessions)
    sessions = args.session.split(",")
    data = {s: pick(rows, sessions) for s, rows in all_rows.items()}
    print(f"<!-- bench/report.py --session {args.session} -->\n")
    renderers = {
        "fanout": report_fanout,
        "rate": report_rate,
        "http": report_http,
        "idle": lambda rs: report_idle(rs, "idle (one Daphne process)"),
        "idlecost": lambda rs: report_idle(rs, "idlecost (RSS per idle connection, by layer)"),
        "scale": report_scale,
        "capacity": report_capacity,
    }
    for s in args.scenarios:
        if data.get(s):
            print(renderers[s](data[s]) + "\n")
    if args.plots:
        for path in plots(data, args.plots):
            print(f"<!-- wrote {path} -->")


if __name__ == "__main__":
    main()
