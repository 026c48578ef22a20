#!/usr/bin/env python3
"""Aggregate metadata throughput: one process per mount directory given,
all starting together, each creating (O_CREAT|O_EXCL, then close) its own
files in its own subdirectory for a fixed time. Prints one JSON object:
creates per second summed over all processes.

Usage: creates.py SECONDS DIR [DIR ...]
"""
import json
import multiprocessing as mp
import os
import sys
import time


def worker(d, start, secs, out):
    os.makedirs(d, exist_ok=True)
    while time.time() < start:
        time.sleep(0.001)
    end, n = start + secs, 0
    while time.time() < end:
        os.close(os.open(os.path.join(d, f"f{n}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        n += 1
    out.put(n)


def main():
    secs, dirs = float(sys.argv[1]), sys.argv[2:]
    start = time.time() + 2
    out = mp.Queue()
    tag = os.urandom(4).hex()
    ps = [
        mp.Process(target=worker, args=(os.path.join(d, f"creates-{tag}-{i}"), start, secs, out))
        for i, d in enumerate(dirs)
    ]
    for p in ps:
        p.start()
    total = sum(out.get() for _ in ps)
    for p in ps:
        p.join()
    print(json.dumps({"mounts": len(dirs), "creates_per_s": total / secs}))


if __name__ == "__main__":
    main()
