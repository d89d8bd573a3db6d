#!/usr/bin/env python3
"""Where an idle connection's memory goes: diff two idle_patches.py snapshots (BENCH_TRACEMALLOC).

usage: .venv/bin/python bench/variants/memdiff.py DIR/snap-PID-0.tm DIR/snap-PID-3000.tm
           [--by lineno|traceback|filename] [--top 30] [--frames 3]

Prints bytes and allocations per connection (N from the second file's name) for the top entries
of the difference, the traced total, RSS from the .json beside each snapshot, and the object types
whose count grew the most.
"""

import argparse
import json
import re
import tracemalloc
from pathlib import Path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--by", default="lineno", choices=["lineno", "traceback", "filename"])
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--frames", type=int, default=4, help="frames shown per traceback")
    args = p.parse_args()
    n = int(re.search(r"-(\d+)\.tm$", args.after).group(1))
    s0 = tracemalloc.Snapshot.load(args.before)
    s1 = tracemalloc.Snapshot.load(args.after)
    noise = [tracemalloc.Filter(False, tracemalloc.__file__)]
    s0, s1 = s0.filter_traces(noise), s1.filter_traces(noise)
    stats = s1.compare_to(s0, args.by)
    total = sum(s.size_diff for s in stats)
    j0 = json.loads(Path(args.before).with_suffix(".json").read_text())
    j1 = json.loads(Path(args.after).with_suffix(".json").read_text())
    print(
        f"{n} connections: traced +{total / n / 1024:.2f} KB per connection; "
        f"RSS {j0['rss_kb']} -> {j1['rss_kb']} KB = {(j1['rss_kb'] - j0['rss_kb']) / n:.2f} KB "
        "per connection (tracemalloc's own memory included)"
    )
    print(f"{'B/conn':>8} {'allocs/conn':>11}  where")
    for s in stats[: args.top]:
        frames = s.traceback.format(limit=args.frames, most_recent_first=True)
        where = " <- ".join(f.strip() for f in frames if not f.startswith("    "))
        print(f"{s.size_diff / n:8.0f} {s.count_diff / n:11.2f}  {where}")
    t0 = dict(j0["types"])
    grown = sorted(((c - t0.get(t, 0), t) for t, c in j1["types"]), reverse=True)
    print("\nobjects per connection, by type (gc-tracked only):")
    print(", ".join(f"{t} {d / n:.2f}" for d, t in grown[:30] if d > 0))


if __name__ == "__main__":
    main()
