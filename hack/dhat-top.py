#!/usr/bin/env python3
"""Top allocation sites of a dhat heap profile (`tandem` built with `--features dhat-heap`).

    python3 hack/dhat-top.py dhat-heap.json [N]

Prints the heap at its peak (t-gmax) and at exit, then the N (default 12) program points that
held the most bytes at the peak, each named by its first frames inside Tandem's own crates (the
allocator and std frames above them say nothing about who to fix).
"""

import json
import sys


def frames(profile, point):
    table = profile["ftbl"]
    names = [table[i] for i in point["fs"]]
    own = [n for n in names if "tandem" in n]
    shown = own[:3] if own else names[:3]
    return " <- ".join(shorten(n) for n in shown)


def shorten(frame):
    # "0x1234: tandem_state::index::Index::apply (crates/state/src/index.rs:120:9)"
    text = frame.split(": ", 1)[-1]
    if " (" in text:
        name, where = text.rsplit(" (", 1)
        where = where.rstrip(")")
        if "/crates/" in where:
            where = "crates/" + where.split("/crates/", 1)[1]
        return f"{name} ({where})"
    return text


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    with open(path) as f:
        profile = json.load(f)
    points = profile["pps"]
    peak = sum(p.get("gb", 0) for p in points)
    at_exit = sum(p.get("eb", 0) for p in points)
    total = sum(p["tb"] for p in points)
    blocks = sum(p["tbk"] for p in points)
    mib = 1024 * 1024
    print(f"heap at peak (t-gmax): {peak / mib:.1f} MiB; at exit: {at_exit / mib:.1f} MiB; "
          f"allocated over the run: {total / mib:.0f} MiB in {blocks} blocks")
    print(f"\ntop {top} sites by bytes held at the peak:")
    for p in sorted(points, key=lambda p: p.get("gb", 0), reverse=True)[:top]:
        share = 100.0 * p.get("gb", 0) / peak if peak else 0.0
        print(f"  {p.get('gb', 0) / mib:7.2f} MiB {share:5.1f} %  {p.get('gbk', 0):8} blocks  "
              f"{frames(profile, p)}")


if __name__ == "__main__":
    main()
