#!/usr/bin/env bash
# Installs what svol's scripts need on a fresh Debian machine (run as root).
# Sourced by quickstart.sh, test.sh and bench/run.sh.
set -euo pipefail

svol_need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

svol_need_cargo_bin() { # name [crate]
  local bin=$1 crate=${2:-$1}
  command -v "$bin" >/dev/null 2>&1 || cargo install --locked -q "$crate" >&2
}

svol_check_fuse() {
  if [ ! -e /dev/fuse ]; then
    mknod /dev/fuse c 10 229 2>/dev/null && chmod 666 /dev/fuse || true
  fi
  [ -e /dev/fuse ] || { echo "error: /dev/fuse is missing and cannot be created" >&2; exit 1; }
}
