#!/usr/bin/env bash
# Catalog search benchmark (issue 4): 10,000 generated entries (~90 packages each), whole
# `diskfab catalog search` commands, median of 7. Appends to docs/bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p diskfab-cli
cargo build --release -q -p diskfab-catalog --example fill
DF=$PWD/target/release/diskfab
mkdir -p target; W=$(mktemp -d "$PWD/target/bench-catalog.XXXXXX")
trap 'rm -rf "$W"' EXIT
N=10000
a=$(date +%s%N); target/release/examples/fill "$W/cat.db" $N; t_fill=$(( ($(date +%s%N) - a) / 1000000 ))
med() { local ts=() a; for _ in 1 2 3 4 5 6 7; do a=$(date +%s%N); "$DF" catalog --catalog "$W/cat.db" search "$@" >/dev/null 2>&1 || true; ts+=($(( ($(date +%s%N) - a) / 1000 ))); done
        printf '%s\n' "${ts[@]}" | sort -n | sed -n 4p | awk '{printf "%.1f", $1/1000}'; }
rows=""
for q in 'distro=debian version>=12 arch=x86_64 package=openssh-server !driver=virtio_blk' \
         'package=openssh-server>=1:9.5' 'distro=fedora,rocky driver=nvme' 'hostname=host4242'; do
  n=$("$DF" catalog --catalog "$W/cat.db" search --json "$q" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' || echo 0)
  rows+="| \`$q\` | $n | $(med "$q") ms |"$'\n'
done
table=$(cat <<MD

## Catalog search (issue 4)

Run: $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; \`bash bench/catalog.sh\`. $N generated entries (SQLite, ~90 packages
each, filled in $t_fill ms); whole \`diskfab catalog search\` commands (process start, open, query, print), median of 7. Goal ≤ 50 ms.

| query | matches | time |
|---|---|---|
${rows}
MD
)
echo "$table"
echo "$table" >> docs/bench.md
