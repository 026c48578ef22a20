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
    ("walk+stat 4 KiB files other mount /s", "walk_stat_4k_other_mount_per_s", True),
    ("read 4 KiB files other mount /s", "read_4k_other_mount_per_s", True),
    ("create /s", "create_per_s", True),
    ("stat other mount /s", "stat_other_mount_per_s", True),
    ("rename /s", "rename_per_s", True),
    ("unlink /s", "unlink_per_s", True),
    ("close-to-open p50 ms", "c2o_p50_ms", False),
    ("close-to-open p99 ms", "c2o_p99_ms", False),
    ("tar -x entries /s", "untar_entries_per_s", True),
    ("tar tree: find on B, s", "untar_find_other_mount_s", False),
    ("tar tree: diff -r on B, s", "untar_diff_other_mount_s", False),
    ("tar tree: rm -rf on B, s", "untar_rm_other_mount_s", False),
    ("git clone files /s", "git_clone_files_per_s", True),
    ("git status on B, s", "git_status_other_mount_s", False),
    ("big dir: creates /s", "bigdir_create_per_s", True),
    ("big dir: creates /s, first 1%", "bigdir_rate_first_per_s", True),
    ("big dir: creates /s, last 1%", "bigdir_rate_last_per_s", True),
    ("big dir: cold ls -f of B, s", "bigdir_cold_ls_s", False),
    ("8 processes: creates /s", "parallel_creates_per_s", True),
]
WORKLOADS = ["big", "small", "meta", "c2o", "untar", "git", "bigdir", "par"]


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
    print(f"| {'workload':38} | " + " | ".join(head) + " |")
    print(f"|{'-' * 40}|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for label, k, hi in ROWS:
        if not all(k in r[n] for n, _ in systems):
            continue
        vals = [f"{r[n][k]:10.2f}" for n, _ in systems]
        rats = [f"{better(r[a][k], r[b][k], hi):{len(h) - 1}.2f}x" for (a, b), h in zip(ratios, head[len(systems):])]
        print(f"| {label:38} | " + " | ".join(vals + rats) + " |")
    print("\nratios A/B: >1 means A is better (higher throughput or lower latency)")
    measured = [(n, t) for n, t in systems if any(k.startswith("cpu_s.") for k in r[n])]
    if measured:
        print("\nCPU seconds / peak RSS MiB of each system's own processes, per workload group")
        print(f"| {'group':8} | " + " | ".join(f"{t:>18}" for _, t in measured) + " |")
        print(f"|{'-' * 10}|" + "|".join("-" * 20 for _ in measured) + "|")
        for g in WORKLOADS:
            if not any(f"cpu_s.{g}" in r[n] for n, _ in measured):
                continue
            cells = [f"{r[n].get('cpu_s.' + g, 0):7.1f} s {r[n].get('rss_mb.' + g, 0):6.0f} MiB" for n, _ in measured]
            print(f"| {g:8} | " + " | ".join(f"{c:>18}" for c in cells) + " |")


if __name__ == "__main__":
    main()
