#!/usr/bin/env bash
# Builds (once) and caches the test fixtures made with reference tools:
#   $DISKFAB_FIXTURES/debian-minbase/   a real Debian 12 tree from debootstrap (minbase)
# Prints the fixture directory. Idempotent: a finished fixture is reused.
set -euo pipefail
FIX=${DISKFAB_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/diskfab-fixtures}
mkdir -p "$FIX"
TREE="$FIX/debian-minbase"
if [ ! -f "$TREE.complete" ]; then
  rm -rf "$TREE" "$TREE.tmp"
  echo "fixtures: debootstrap Debian 12 minbase into $TREE (one time, a few minutes)" >&2
  debootstrap --variant=minbase bookworm "$TREE.tmp" http://deb.debian.org/debian >"$FIX/debootstrap.log" 2>&1 || {
    tail -20 "$FIX/debootstrap.log" >&2; exit 1; }
  # Trim what varies between runs and what a test does not need.
  rm -rf "$TREE.tmp/var/cache/apt/archives/"*.deb "$TREE.tmp/var/lib/apt/lists/"*_Packages 2>/dev/null || true
  mv "$TREE.tmp" "$TREE"
  touch "$TREE.complete"
fi
echo "$FIX"
