#!/usr/bin/env python3
"""The benchmark workloads, run against one system mounted twice (A and B).

Usage: workloads.py NAME DIR_A DIR_B [--big-mib N] [--files N] [--meta N]
                    [--rounds N] [--tree N] [--bigdir N]
Prints one JSON object of results. Every workload runs on the same paths
for every system, so the numbers compare side by side.
"""
import json
import os
import statistics
import sys
import time


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def unique_mib(pool, i):
    """MiB number i of a stream in which no MiB repeats (a random pool with
    the MiB's number stamped in), so no system can dedup or cache its way
    through the benchmark, at memcpy cost instead of urandom's."""
    off = (i * (1 << 20)) % (len(pool) - (1 << 20))
    buf = bytearray(pool[off : off + (1 << 20)])
    buf[:8] = i.to_bytes(8, "little")
    return buf


def seq_write_read(a, b, mib):
    pool = os.urandom(64 << 20)
    path_a, path_b = os.path.join(a, "big.bin"), os.path.join(b, "big.bin")
    t = time.perf_counter()
    fd = os.open(path_a, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    for i in range(mib):
        os.write(fd, unique_mib(pool, i))
    os.fsync(fd)
    os.close(fd)
    w = time.perf_counter() - t
    drop_caches()
    t = time.perf_counter()
    fd = os.open(path_b, os.O_RDONLY)
    n = 0
    while True:
        d = os.read(fd, 1 << 20)
        if not d:
            break
        n += len(d)
    os.close(fd)
    r = time.perf_counter() - t
    assert n == mib << 20, f"read {n} bytes from the other mount, want {mib << 20}"
    os.unlink(path_a)
    return {"write_MBps": mib / w, "cold_read_MBps": mib / r}


def small_files(a, b, n):
    da, db = os.path.join(a, "small"), os.path.join(b, "small")
    os.mkdir(da)
    payload = os.urandom(4096 - 8)
    body = lambda i: i.to_bytes(8, "little") + payload  # every file unique
    t = time.perf_counter()
    for i in range(n):
        with open(os.path.join(da, f"f{i}"), "wb") as f:
            f.write(body(i))
    c = time.perf_counter() - t
    drop_caches()
    t = time.perf_counter()
    for i in range(n):
        with open(os.path.join(db, f"f{i}"), "rb") as f:
            assert f.read() == body(i)
    r = time.perf_counter() - t
    return {"create_4k_per_s": n / c, "read_4k_other_mount_per_s": n / r}


def metadata(a, n):
    d = os.path.join(a, "meta")
    os.mkdir(d)
    out = {}
    t = time.perf_counter()
    for i in range(n):
        os.close(os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    out["create_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        os.stat(os.path.join(d, f"f{i}"))
    out["stat_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        os.rename(os.path.join(d, f"f{i}"), os.path.join(d, f"g{i}"))
    out["rename_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        os.unlink(os.path.join(d, f"g{i}"))
    out["unlink_per_s"] = n / (time.perf_counter() - t)
    return out


def visibility(a, b, rounds):
    pa, pb = os.path.join(a, "c2o"), os.path.join(b, "c2o")
    with open(pa, "w") as f:
        f.write("start")
    deadline = time.time() + 30
    while not os.path.exists(pb):
        assert time.time() < deadline, "file never appeared on the other mount"
    lat = []
    for i in range(rounds):
        want = f"round {i}"
        with open(pa, "w") as f:
            f.write(want)
        t = time.perf_counter()
        while True:
            try:
                with open(pb) as f:
                    if f.read() == want:
                        break
            except FileNotFoundError:
                pass
            assert time.perf_counter() - t < 30, "change never seen on the other mount"
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return {"c2o_p50_ms": statistics.median(lat), "c2o_p99_ms": lat[int(len(lat) * 0.99) - 1]}


def untar(a, b, n):
    """`tar -x` of a source-tree-like archive (n files of 1-16 KiB, unique,
    in nested directories) onto A; the tree is then listed and compared
    with the archive (times included) from B."""
    import subprocess
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        for i in range(n):
            d = os.path.join(src, f"pkg{i // 500}", f"mod{(i // 50) % 10}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"f{i}.py"), "wb") as f:
                f.write(i.to_bytes(8, "little") + os.urandom(1024 + (i * 37) % 15360))
        tarball = os.path.join(tmp, "tree.tar")
        with tarfile.open(tarball, "w") as t:
            t.add(src, arcname="tree")
        dest = os.path.join(a, "untar")
        os.mkdir(dest)
        t0 = time.perf_counter()
        subprocess.run(["tar", "-xf", tarball, "-C", dest], check=True)
        x = time.perf_counter() - t0
        drop_caches()
        cmp = subprocess.run(["tar", "-df", tarball, "-C", os.path.join(b, "untar")],
                             capture_output=True, text=True)
        assert cmp.returncode == 0, f"tar -d on the other mount: {cmp.stdout[:500]}"
    return {"untar_entries_per_s": n / x}


def big_dir(a, b, n):
    """n empty files created in one directory on A, then a cold `ls -f`
    (names only, no stat) of it on B."""
    da, db = os.path.join(a, "bigdir"), os.path.join(b, "bigdir")
    os.mkdir(da)
    t0 = time.perf_counter()
    for i in range(n):
        os.close(os.open(os.path.join(da, f"entry-{i:07d}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    c = time.perf_counter() - t0
    drop_caches()
    t0 = time.perf_counter()
    names = os.listdir(db)
    ls = time.perf_counter() - t0
    assert len(names) == n, f"listed {len(names)} of {n} on the other mount"
    return {"bigdir_create_per_s": n / c, "bigdir_cold_ls_s": ls}


def main():
    name, a, b = sys.argv[1:4]
    args = sys.argv[4:]
    opt = lambda k, d: int(args[args.index(k) + 1]) if k in args else d
    res = {"system": name}
    res.update(seq_write_read(a, b, opt("--big-mib", 2048)))
    res.update(small_files(a, b, opt("--files", 10000)))
    res.update(metadata(a, opt("--meta", 20000)))
    res.update(visibility(a, b, opt("--rounds", 200)))
    res.update(untar(a, b, opt("--tree", 20000)))
    res.update(big_dir(a, b, opt("--bigdir", 100000)))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
