#!/usr/bin/env python3
"""The benchmark workloads, run against one system mounted twice (A and B).

Usage: workloads.py NAME DIR_A DIR_B [--big-mib N] [--files N] [--meta N]
                    [--rounds N] [--tree N] [--bigdir N] [--repo N]
                    [--procs N] [--pids PID,PID,...]
Prints one JSON object of results. Every workload runs on the same paths
for every system, so the numbers compare side by side. With --pids (the
system's own processes: server, mounts), each workload also reports the CPU
seconds those processes used and the sum of their peak RSS during it.
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


class Procs:
    """CPU seconds and peak RSS of a system's processes, per workload."""

    def __init__(self, pids):
        self.pids = [int(p) for p in pids.split(",") if p] if pids else []
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu(self):
        total = 0
        for p in self.pids:
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except OSError:
                pass
        return total / self.tick

    def reset_peak(self):
        for p in self.pids:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5\n")  # resets VmHWM
            except OSError:
                pass

    def peak_mb(self):
        total = 0
        for p in self.pids:
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def run(self, res, name, fn, *args):
        self.reset_peak()
        c0 = self.cpu()
        res.update(fn(*args))
        if self.pids:
            res[f"cpu_s.{name}"] = self.cpu() - c0
            res[f"rss_mb.{name}"] = self.peak_mb()


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
    seen = 0
    for root, dirs, files in os.walk(db):
        for name in files:
            os.lstat(os.path.join(root, name))
            seen += 1
    w = time.perf_counter() - t
    assert seen == n, f"walked {seen} of {n} files on the other mount"
    drop_caches()
    t = time.perf_counter()
    for i in range(n):
        with open(os.path.join(db, f"f{i}"), "rb") as f:
            assert f.read() == body(i)
    r = time.perf_counter() - t
    return {"create_4k_per_s": n / c, "walk_stat_4k_other_mount_per_s": n / w,
            "read_4k_other_mount_per_s": n / r}


def metadata(a, b, n):
    d, db = os.path.join(a, "meta"), os.path.join(b, "meta")
    os.mkdir(d)
    out = {}
    t = time.perf_counter()
    for i in range(n):
        os.close(os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    out["create_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        os.stat(os.path.join(db, f"f{i}"))
    out["stat_other_mount_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        os.rename(os.path.join(d, f"f{i}"), os.path.join(d, f"g{i}"))
    # Timed until the other mount sees them: a rename that returns before
    # the server has it (svol under a hold) pays for it here.
    os.stat(os.path.join(db, f"g{n - 1}"))
    out["rename_per_s"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        os.unlink(os.path.join(d, f"g{i}"))
    assert os.listdir(db) == [], "unlinked names still listed on the other mount"
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
        out = {"untar_entries_per_s": n / x}
        drop_caches()
        t0 = time.perf_counter()
        found = subprocess.run(["find", os.path.join(b, "untar"), "-type", "f"],
                               capture_output=True, check=True).stdout.count(b"\n")
        out["untar_find_other_mount_s"] = time.perf_counter() - t0
        assert found == n, f"find saw {found} of {n} files on the other mount"
        drop_caches()
        t0 = time.perf_counter()
        subprocess.run(["diff", "-r", src, os.path.join(b, "untar", "tree")], check=True)
        out["untar_diff_other_mount_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(["rm", "-rf", os.path.join(b, "untar")], check=True)
        out["untar_rm_other_mount_s"] = time.perf_counter() - t0
        assert not os.path.exists(os.path.join(a, "untar")), "rm -rf on B, still on A"
    return out


def git_clone(a, b, n):
    """`git clone` onto A of a local repository of n unique files in
    nested directories, then `git status` of the clone on B."""
    import subprocess
    import tempfile

    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    def git(*args):
        r = subprocess.run(["git", *args], env=env, capture_output=True)
        assert r.returncode == 0, f"git {args[0]} failed: {r.stderr.decode(errors='replace')[-2000:]}"
        return r
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        for i in range(n):
            d = os.path.join(src, f"lib{i // 400}", f"part{(i // 40) % 10}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"m{i}.rs"), "wb") as f:
                f.write(b"// %d\n" % i + os.urandom(600 + (i * 53) % 3000).hex().encode())
        git("init", "-q", src)
        git("-C", src, "add", "-A")
        git("-C", src, "commit", "-q", "-m", "tree")
        drop_caches()
        t0 = time.perf_counter()
        # Through git's transport (a pack, then a checkout of every file),
        # as a clone from a server is, not a copy of the object files.
        git("clone", "-q", "--no-local", src, os.path.join(a, "clone"))
        out = {"git_clone_files_per_s": n / (time.perf_counter() - t0)}
    drop_caches()
    t0 = time.perf_counter()
    st = git("-C", os.path.join(b, "clone"), "status", "--porcelain")
    out["git_status_other_mount_s"] = time.perf_counter() - t0
    assert st.stdout == b"", f"git status on B: {st.stdout[:300]!r}"
    return out


def parallel_creates(a, b, procs, n):
    """procs processes, alternating between A and B, each creating n empty
    files in a directory of its own; aggregate creates/s."""
    import subprocess

    code = ("import os,sys\nd=sys.argv[1]\nos.mkdir(d)\n"
            "for i in range(int(sys.argv[2])):\n"
            "    os.close(os.open(os.path.join(d, f'f{i}'), os.O_CREAT|os.O_EXCL|os.O_WRONLY, 0o644))\n")
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-c", code,
                            os.path.join(a if k % 2 == 0 else b, f"par{k}"), str(n)])
          for k in range(procs)]
    for p in ps:
        assert p.wait() == 0, "a creating process failed"
    return {"parallel_creates_per_s": procs * n / (time.perf_counter() - t0)}


def big_dir(a, b, n):
    """n empty files created in one directory on A, then a cold `ls -f`
    (names only, no stat) of it on B."""
    da, db = os.path.join(a, "bigdir"), os.path.join(b, "bigdir")
    os.mkdir(da)
    t0 = time.perf_counter()
    window = max(n // 100, 100)
    rates, w0 = [], t0
    for i in range(n):
        os.close(os.open(os.path.join(da, f"entry-{i:07d}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        if (i + 1) % window == 0:
            now = time.perf_counter()
            rates.append(window / (now - w0))
            w0 = now
    c = time.perf_counter() - t0
    drop_caches()
    t0 = time.perf_counter()
    names = os.listdir(db)
    ls = time.perf_counter() - t0
    assert len(names) == n, f"listed {len(names)} of {n} on the other mount"
    # The create rate near the start and near the end of the directory's
    # growth (one window = 1% of it): it must not fall with size.
    return {"bigdir_create_per_s": n / c, "bigdir_cold_ls_s": ls,
            "bigdir_rate_first_per_s": rates[0], "bigdir_rate_last_per_s": rates[-1]}


def main():
    name, a, b = sys.argv[1:4]
    args = sys.argv[4:]
    opt = lambda k, d: int(args[args.index(k) + 1]) if k in args else d
    procs = Procs(args[args.index("--pids") + 1] if "--pids" in args else "")
    only = args[args.index("--only") + 1].split(",") if "--only" in args else None
    res = {"system": name}
    workloads = [
        ("big", seq_write_read, (opt("--big-mib", 2048),)),
        ("small", small_files, (opt("--files", 10000),)),
        ("meta", metadata, (opt("--meta", 20000),)),
        ("c2o", visibility, (opt("--rounds", 200),)),
        ("untar", untar, (opt("--tree", 20000),)),
        ("git", git_clone, (opt("--repo", 5000),)),
        ("bigdir", big_dir, (opt("--bigdir", 100000),)),
        ("par", parallel_creates, (opt("--procs", 8), opt("--meta", 20000) // 4)),
    ]
    unknown = set(only or []) - {w[0] for w in workloads}
    assert not unknown, f"--only: no workload named {sorted(unknown)}"
    for key, fn, extra in workloads:
        if only is None or key in only:
            procs.run(res, key, fn, a, b, *extra)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
