#!/usr/bin/env bash
# Catalog search: generated entries (~90 packages each), whole `diskfab catalog search` commands.
# `search` exits 0 when something matches and 1 when nothing does; the exit status required of
# each timed run is the one that matches the number of results counted first.
# Usage: bash bench/catalog.sh [--quick]     (bench/run.sh calls it)
[ "${1:-}" = --quick ] && export BENCH_QUICK=1
source "$(dirname "$0")/lib.sh"
N=${BENCH_CATALOG:-$(pick 10000 500)}
N7=$(pick 7 1)
if [ -z "${FILL:-}" ]; then
  cargo build --release -q -p diskfab-catalog --example fill
  FILL=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/fill
fi
measure --runs 1 --check "[ -s '$W/cat.db' ]" -- "$FILL" "$W/cat.db" "$N"
t_fill=$MS
rows=""
for q in 'distro=debian version>=12 arch=x86_64 package=openssh-server !driver=virtio_blk' \
  'package=openssh-server>=1:9.5' 'distro=fedora,rocky driver=nvme' 'hostname=host4242'; do
  rc=0
  "$DF" catalog --catalog "$W/cat.db" search --json "$q" >"$W/found.json" || rc=$?
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$W/found.json")
  want=$([ "$n" -gt 0 ] && echo 0 || echo 1)
  [ "$rc" = "$want" ] || die "catalog search '$q' found $n and exited $rc (expected $want)"
  measure --runs "$N7" --rc "$want" -- "$DF" catalog --catalog "$W/cat.db" search "$q"
  rows+="| \`$q\` | $n | $MS ms |"$'\n'
done
emit <<MD
## Catalog search

\`bash bench/catalog.sh\`. $N generated entries (SQLite, ~90 packages each, filled in $t_fill ms); whole
\`diskfab catalog search\` commands (process start, open, query, print), median of $N7 run(s). Goal ≤ 50 ms for 10000.

| query | matches | time |
|---|---|---|
${rows}
MD
