#!/usr/bin/env bash
# pjdfstest and fsx on a real svol mount, with a real server. Prints the
# pass/fail/skip counts; fails if any pjdfstest case fails or fsx finds
# corruption. Skips are listed (they need a read-only remount or a second
# file system, which this harness does not provide).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
svol_need_apt fuse3 libacl1-dev
svol_check_fuse
svol_need_cargo_bin pjdfstest
svol_need_cargo_bin fsx
for u in tests pjdfstest; do
  id "$u" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$u"
done

cargo build -q -p svol
SVOL=$PWD/target/debug/svol
WORK=$(mktemp -d /tmp/svol-posix.XXXXXX)
chmod 0755 "$WORK"  # the suite switches to unprivileged users
mkdir -p "$WORK/pjd" "$WORK/fsx"
"$SVOL" server --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  "$SVOL" umount "$WORK/pjd" 2>/dev/null || fusermount3 -uz "$WORK/pjd" 2>/dev/null || true
  "$SVOL" umount "$WORK/fsx" 2>/dev/null || fusermount3 -uz "$WORK/fsx" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
export SVOL_CONFIG=$WORK/data/client.toml
"$SVOL" volume create posix >/dev/null
"$SVOL" mount posix "$WORK/pjd" -d --allow-other
"$SVOL" mount posix "$WORK/fsx" -d --allow-other
chmod 0777 "$WORK/pjd"
mkdir -m 0777 "$WORK/pjd/t"

cat >"$WORK/pjdfstest.toml" <<'TOML'
[features]
posix_fallocate = {}
utime_now = {}
utimensat = {}
rename_ctime = {}

[settings]
naptime = 0.001
allow_remount = false
TOML

echo "== pjdfstest"
set +e
(cd "$WORK/pjd/t" && pjdfstest -c "$WORK/pjdfstest.toml" -p "$WORK/pjd/t") >"$WORK/pjdfstest.log" 2>&1
set -e
grep -E "FAILED|skipped" "$WORK/pjdfstest.log" || true
summary=$(grep -E "^Summary:" "$WORK/pjdfstest.log" || true)
[ -n "$summary" ] || { tail -40 "$WORK/pjdfstest.log"; echo "pjdfstest did not finish"; exit 1; }
echo "pjdfstest $summary"
passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*: ([0-9]+) failed.*/\1/' <<<"$summary")
skipped=$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$summary")

echo "== fsx (100000 operations; the file is read back through a second mount)"
fsx_ok=0
if (cd "$WORK/fsx" && fsx -N 100000 -S 42 -q "$WORK/fsx/fsxfile") >"$WORK/fsx.log" 2>&1; then
  fsx_ok=1
fi
tail -3 "$WORK/fsx.log"
# The same bytes through the other mount (close-to-open after fsx closed it).
cmp "$WORK/fsx/fsxfile" "$WORK/pjd/fsxfile" && echo "fsx file identical on both mounts"

echo "posix: ${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" = 0 ] && [ "$fsx_ok" = 1 ]
