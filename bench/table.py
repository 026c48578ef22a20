#!/usr/bin/env python3
"""Prints `workloads.py` results side by side, with ratios.

Usage: table.py DIR NAME=TITLE... [--ratio A/B]...
Reads DIR/NAME.json for every system named; one column per system, then
one column per ratio A/B ("how many times better A is than B": >1 means A
wins, for throughputs and latencies alike).
"""
import json
import sys

ROWS = [
    ("seq write+fsync MB/s", "write_MBps", True),
    ("cold read other mount MB/s", "cold_read_MBps", True),
    ("create 4 KiB files /s", "create_4k_per_s", True),
    ("read 4 KiB files other mount /s", "read_4k_other_mount_per_s", True),
    ("create /s", "create_per_s", True),
    ("stat /s", "stat_per_s", True),
    ("rename /s", "rename_per_s", True),
    ("unlink /s", "unlink_per_s", True),
    ("close-to-open p50 ms", "c2o_p50_ms", False),
    ("close-to-open p99 ms", "c2o_p99_ms", False),
    ("tar -x entries /s", "untar_entries_per_s", True),
    ("big dir: creates /s", "bigdir_create_per_s", True),
    ("big dir: cold ls -f of B, s", "bigdir_cold_ls_s", False),
]


def better(a, b, higher):
    if higher:
        return a / b if b else float("inf")
    return b / a if a else float("inf")


def main():
    w, args = sys.argv[1], sys.argv[2:]
    systems = [a.split("=", 1) for a in args if "=" in a]
    ratios = [args[i + 1].split("/") for i, a in enumerate(args) if a == "--ratio"]
    title = dict(systems)
    r = {n: json.load(open(f"{w}/{n}.json")) for n, _ in systems}
    head = [f"{t:>10}" for _, t in systems] + [f"{title[a] + '/' + title[b]:>12}" for a, b in ratios]
    print(f"| {'workload':34} | " + " | ".join(head) + " |")
    print(f"|{'-' * 36}|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for label, k, hi in ROWS:
        vals = [f"{r[n][k]:10.2f}" for n, _ in systems]
        rats = [f"{better(r[a][k], r[b][k], hi):{len(h) - 1}.2f}x" for (a, b), h in zip(ratios, head[len(systems):])]
        print(f"| {label:34} | " + " | ".join(vals + rats) + " |")
    print("\nratios A/B: >1 means A is better (higher throughput or lower latency)")


if __name__ == "__main__":
    main()
