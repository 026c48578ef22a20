#!/usr/bin/env bash
# One command for svol's main job on a fresh machine: build, start a server
# on the embedded default (SQLite + local disk), create a volume, mount it
# twice (as two hosts would), write on one mount and read on the other, then
# run a job with the volume mounted at the path it expects (`svol run`).
# Pass --keep to leave the server and mounts running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
svol_need_apt fuse3 attr curl
svol_check_fuse

cargo build --release -p svol
SVOL=$PWD/target/release/svol
DEMO=${SVOL_DEMO_DIR:-/tmp/svol-quickstart}
mkdir -p "$DEMO/a" "$DEMO/b"

"$SVOL" server --data-dir "$DEMO/data" --listen 127.0.0.1:7420 >"$DEMO/server.log" 2>&1 &
SERVER=$!
cleanup() {
  "$SVOL" umount "$DEMO/a" 2>/dev/null || true
  "$SVOL" umount "$DEMO/b" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
}
[ "${1:-}" = "--keep" ] || trap cleanup EXIT
for _ in $(seq 100); do grep -q "listening on" "$DEMO/server.log" && break; sleep 0.1; done
cat "$DEMO/server.log"
export SVOL_CONFIG=$DEMO/data/client.toml

"$SVOL" volume create model-cache 2>/dev/null || echo "volume model-cache exists"
"$SVOL" mount model-cache "$DEMO/a" -d
"$SVOL" mount model-cache "$DEMO/b" -d
echo "mounted model-cache at $DEMO/a and $DEMO/b"

head -c 64M /dev/urandom >"$DEMO/weights.bin"
cp "$DEMO/weights.bin" "$DEMO/a/weights.bin"
echo "hello from mount a" >"$DEMO/a/hello.txt"
echo "mount b sees: $(cat "$DEMO/b/hello.txt")"
cmp "$DEMO/weights.bin" "$DEMO/b/weights.bin" && echo "mount b reads the same 64 MiB of weights"
"$SVOL" volume ls model-cache
"$SVOL" volume info model-cache

# The seed's function: a job with the volume mounted where it expects it
# (a path the host does not have), in its own app, stopped when it ends.
"$SVOL" run -v /root/cache=model-cache -e HF_HOME=/root/cache -- \
  sh -c 'echo "job sees: $(ls "$HF_HOME" | tr "\n" " ")"; cmp "$HF_HOME/weights.bin" /dev/stdin' <"$DEMO/weights.bin" \
  && echo "svol run: the job read the same weights at /root/cache"
# Scratch space that lives as long as its app.
APP=$("$SVOL" app create --name quickstart)
SCRATCH=$("$SVOL" volume create --ephemeral --app "$APP")
"$SVOL" run --app "$APP" -v /scratch="$SCRATCH" -- sh -c 'date > /scratch/stamp'
"$SVOL" app stop "$APP"
"$SVOL" app list
# What the server measures (Prometheus) and where its dashboard shows the volume.
curl -fsS http://127.0.0.1:7420/metrics | grep -E '^svol_(volumes|logical_bytes|stored_bytes|dedup_ratio) '
echo "dashboard: $("$SVOL" volume dashboard model-cache) (sign in with the token in $SVOL_CONFIG)"
if [ "${1:-}" = "--keep" ]; then
  echo "left running: server pid $SERVER, mounts $DEMO/a $DEMO/b (SVOL_CONFIG=$SVOL_CONFIG)"
fi
