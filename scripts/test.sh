#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, unit and conformance tests,
# integration tests with real servers and FUSE mounts, pjdfstest and fsx
# on a real mount. Installs what it needs (run as root on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
svol_need_apt fuse3 attr libacl1-dev iproute2 util-linux
# PostgreSQL for the scale-out tests: each test process makes a throw-away
# cluster with initdb in a temporary directory (crates/svol-testkit).
svol_need_apt postgresql
command -v python3 >/dev/null || svol_need_apt python3
# The seed-story tests install flufl.lock from PyPI with `python3 -m pip`.
python3 -m pip --version >/dev/null 2>&1 || svol_need_apt python3-pip
svol_check_fuse
# The S3 block store is tested against a real S3 server: s3s-fs (the S3 API
# of the s3s crate over a local directory), built once into a fixed root
# (about 2.5 minutes the first time; the tests find it there).
if [ ! -x /var/cache/svol-tools/bin/s3s-fs ]; then
  echo "installing s3s-fs (S3 server for the tests)" >&2
  cargo install --locked -q s3s-fs --version 0.14.1 --features binary --root /var/cache/svol-tools >&2
fi

echo "== format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== unit, conformance and integration tests"
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/svol-cargo-test.log
grep -q "test result" /tmp/svol-cargo-test.log

echo "== Python package: built from this checkout (maturin over the Rust SDK) and tested"
# The wheel's native part is built with the dev profile, so it reuses what
# `cargo test` just compiled; users' `pip install ./python` builds release.
python3 -m pip install -q --disable-pip-version-check "maturin>=1.7,<2" "pytest>=7" "flufl.lock>=7" "cloudpickle>=2"
MATURIN_PEP517_ARGS="--profile dev" python3 -m pip install -q --disable-pip-version-check \
  --no-build-isolation --force-reinstall --no-deps ./python
python3 -m pytest -q -p no:cacheprovider python/tests

echo "== the dashboard in a real browser (Debian's Chromium, driven by Playwright)"
svol_need_apt chromium
python3 -m pip install -q --disable-pip-version-check "playwright>=1.40"
python3 -m pytest -q -p no:cacheprovider tests/browser

echo "== POSIX suites on a real mount"
bash scripts/posix.sh
