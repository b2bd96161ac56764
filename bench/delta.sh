#!/usr/bin/env bash
# Diff/delta/factory benchmark (issue 6). Appends to docs/bench.md.
# Usage: bash bench/delta.sh      (bench/run.sh calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
FIX=$(bash scripts/fixtures.sh)
cargo build --release -q -p diskfab-cli
DF=$PWD/target/release/diskfab
mkdir -p target; W=$(mktemp -d "$PWD/target/bench-delta.XXXXXX")
trap 'rm -rf "$W"' EXIT
now() { date +%s%N; }
ms() { awk -v t="$1" 'BEGIN{printf "%.0f", t/1e6}'; }
med3() { local ts=() a; for _ in 1 2 3; do a=$(now); "$@" >/dev/null 2>&1 || true; ts+=($(( $(now) - a ))); done
         printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p; }

cp "$FIX/debian-mbr.qcow2" "$W/a.qcow2"
# B: an independent full copy of the same Debian image (no shared backing file), then a few files changed.
qemu-img convert -O qcow2 "$W/a.qcow2" "$W/b.qcow2"
"$DF" customize "$W/b.qcow2" --hostname changed --write /etc/motd:changed --delete /etc/issue.net \
  --append-line /etc/bash.bashrc:'# changed' >/dev/null
t_ind=$(med3 "$DF" diff "$W/a.qcow2" "$W/b.qcow2")
n_ind=$("$DF" diff --json "$W/a.qcow2" "$W/b.qcow2" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["changes"]))' || true)

# Two clones of one base, each customized.
"$DF" create "$W/c1.qcow2" -b a.qcow2 >/dev/null; "$DF" create "$W/c2.qcow2" -b a.qcow2 >/dev/null
"$DF" customize "$W/c1.qcow2" --hostname one --write /etc/app:1 >/dev/null
"$DF" customize "$W/c2.qcow2" --hostname two --write /etc/app:2 --user-add bob >/dev/null
t_cl=$(med3 "$DF" diff "$W/c1.qcow2" "$W/c2.qcow2")
t_clfull=$(med3 "$DF" diff --no-fast-path "$W/c1.qcow2" "$W/c2.qcow2")

# A 100 MB delta: B = A + 100 MB of new files.
mkdir -p "$W/payload"; for i in 1 2 3 4; do head -c 25M /dev/urandom > "$W/payload/blob$i"; done
"$DF" create "$W/big.qcow2" -b a.qcow2 >/dev/null
"$DF" copy-in "$W/big.qcow2" "$W/payload" /opt >/dev/null
a=$(now); "$DF" delta create "$W/a.qcow2" "$W/big.qcow2" -o "$W/big.delta" >/dev/null; t_dc=$(( $(now) - a ))
dsize=$(stat -c %s "$W/big.delta")
ts=()
for r in 1 2 3; do
  "$DF" create "$W/apply$r.qcow2" -b a.qcow2 >/dev/null; sync
  a=$(now); "$DF" delta apply "$W/apply$r.qcow2" "$W/big.delta" >/dev/null; ts+=($(( $(now) - a )))
done
t_da=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p)
"$DF" diff "$W/apply2.qcow2" "$W/big.qcow2" >/dev/null

vd="not installed"
if command -v virt-diff >/dev/null; then
  a=$(now); LIBGUESTFS_BACKEND_SETTINGS=force_tcg virt-diff -a "$W/a.qcow2" -A "$W/b.qcow2" >/dev/null 2>&1 || true
  vd="$(ms $(( $(now) - a ))) ms"
fi
table=$(cat <<MD

## Diff, deltas (issue 6)

Run: $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; \`bash bench/delta.sh\`; whole commands, median of 3.

| measure | diskfab | goal / reference |
|---|---|---|
| diff of two independent 2 GiB Debian qcow2 images ($n_ind differences; every same-size file hashed) | $(ms "$t_ind") ms | ≤ 2000 ms; virt-diff: $vd |
| diff of two clones of one base (fast path: blocks written above the base) | $(ms "$t_cl") ms | ≤ 200 ms (full comparison: $(ms "$t_clfull") ms) |
| delta create, 100 MB of new files ($((dsize / 1048576)) MiB delta) | $(ms "$t_dc") ms | |
| delta apply of that delta to a fresh overlay (verify, pre-images, write) | $(ms "$t_da") ms | ≤ 2000 ms |
MD
)
echo "$table"
echo "$table" >> docs/bench.md
