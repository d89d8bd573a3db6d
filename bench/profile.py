#!/usr/bin/env python3
"""Summarise py-spy collapsed stacks (bench/run.py --profile DIR): where a server's time goes.

usage: python bench/profile.py FILE [--top N] [--match SUBSTRING ...]

Prints the top functions by self time and by inclusive time (share of all samples), and, for each
--match, the inclusive share of samples whose stack contains that substring.
"""

import argparse
import collections
import re

FRAME = re.compile(r"^(.*) \((?:.*/)?([^/:()]+)(?::\d+)?\)$")


def load(path):
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            frames = [FRAME.sub(r"\1 (\2)", fr) for fr in stack.split(";")]
            stacks.append((frames, int(count)))
    return stacks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--match", action="append", default=[])
    args = p.parse_args()
    stacks = load(args.file)
    total = sum(c for _, c in stacks) or 1
    self_t, incl = collections.Counter(), collections.Counter()
    idle = 0
    for frames, c in stacks:
        if frames and (
            "select (selectors.py" in frames[-1] or "poll (" in frames[-1] or "epoll" in frames[-1]
        ):
            idle += c
        self_t[frames[-1]] += c
        for fr in set(frames):
            incl[fr] += c
    print(f"samples: {total}  idle in the event loop's poll: {100 * idle / total:.1f}%")
    print("\n-- self time --")
    for fr, c in self_t.most_common(args.top):
        print(f"{100 * c / total:6.1f}%  {fr}")
    print("\n-- inclusive time --")
    for fr, c in incl.most_common(args.top):
        print(f"{100 * c / total:6.1f}%  {fr}")
    for m in args.match:
        c = sum(c for frames, c in stacks if any(m in fr for fr in frames))
        print(f"\nmatch {m!r}: {100 * c / total:.1f}%")


if __name__ == "__main__":
    main()
