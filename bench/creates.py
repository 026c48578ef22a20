#!/usr/bin/env python3
"""Aggregate metadata throughput: one process per mount directory given,
all starting together, each creating (O_CREAT|O_EXCL, then close) its own
files in its own subdirectory for a fixed time. Prints one JSON object:
creates per second summed over all processes, and the CPU time each part
of the system used meanwhile (PostgreSQL, svol servers, mounts, ...), to
show what saturates.

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


def cpu_by_part():
    """CPU seconds used so far by every process, summed by what it is."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        secs = (int(fields[11]) + int(fields[12])) / tick
        if comm == "postgres":
            part = "postgres"
        elif "svol" in comm and " server" in cmd:
            part = "svol server"
        elif "svol" in comm:
            part = "svol mount"
        elif "juicefs" in comm:
            part = "juicefs client"
        elif "s3s" in comm:
            part = "s3"
        elif comm.startswith("python"):
            part = "workload"
        else:
            part = "other"
        out[part] = out.get(part, 0) + secs
    return out


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
    while time.time() < start:
        time.sleep(0.001)
    before = cpu_by_part()
    total = sum(out.get() for _ in ps)
    after = cpu_by_part()
    for p in ps:
        p.join()
    # Processes that exited meanwhile are not counted: the workers report
    # before they exit, the servers and mounts run throughout.
    cpu = {k: round(after.get(k, 0) - before.get(k, 0), 2) for k in after}
    cpu = {k: v for k, v in cpu.items() if v > 0}
    print(json.dumps({
        "mounts": len(dirs),
        "creates_per_s": total / secs,
        "cpu_seconds": cpu,
        "cpu_available": os.cpu_count() * secs,
    }))


if __name__ == "__main__":
    main()
