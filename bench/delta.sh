#!/usr/bin/env bash
# Diff and deltas: diff of two independent copies of the Debian image, diff of two clones of one
# base, delta create/apply of new files. `diff` exits 1 when the images differ; that is the exit
# status required here (and the number of differences is checked).
# Usage: bash bench/delta.sh [--quick]     (bench/run.sh calls it)
[ "${1:-}" = --quick ] && export BENCH_QUICK=1
source "$(dirname "$0")/lib.sh"
PAYLOAD_MB=${BENCH_PAYLOAD_MB:-$(pick 100 8)}

cp "$FIX/debian-mbr.qcow2" "$W/a.qcow2"
# B: an independent full copy of the same Debian image (no shared backing file), then a few files changed.
qemu-img convert -O qcow2 "$W/a.qcow2" "$W/b.qcow2"
"$DF" customize "$W/b.qcow2" --hostname changed --write /etc/motd:changed --delete /etc/issue.net \
  --append-line /etc/bash.bashrc:'# changed' >/dev/null
# changes IMAGE_A IMAGE_B: the number of differences diff --json reports (exit 1: they differ).
changes() {
  local rc=0
  "$DF" diff --json "$1" "$2" >"$W/diff.json" || rc=$?
  [ "$rc" -eq 1 ] || die "diff --json $1 $2 exited $rc, expected 1 (different)"
  python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["changes"]))' "$W/diff.json"
}
n_ind=$(changes "$W/a.qcow2" "$W/b.qcow2")
[ "$n_ind" -ge 4 ] || die "diff found $n_ind differences between a and b, expected at least 4"
warm "$W/a.qcow2" "$W/b.qcow2"
measure --rc 1 --check "grep -q motd \"\$OUT\"" -- "$DF" diff "$W/a.qcow2" "$W/b.qcow2"
t_ind=$MS

# Two clones of one base, each customized.
"$DF" create "$W/c1.qcow2" -b a.qcow2 >/dev/null
"$DF" create "$W/c2.qcow2" -b a.qcow2 >/dev/null
"$DF" customize "$W/c1.qcow2" --hostname one --write /etc/app:1 >/dev/null
"$DF" customize "$W/c2.qcow2" --hostname two --write /etc/app:2 --user-add bob >/dev/null
n_cl=$(changes "$W/c1.qcow2" "$W/c2.qcow2")
measure --rc 1 --check "grep -q /etc/app \"\$OUT\"" -- "$DF" diff "$W/c1.qcow2" "$W/c2.qcow2"
t_cl=$MS
measure --rc 1 --check "grep -q /etc/app \"\$OUT\"" -- "$DF" diff --no-fast-path "$W/c1.qcow2" "$W/c2.qcow2"
t_clfull=$MS

# A delta of PAYLOAD_MB MiB: B = A + new files.
mkdir -p "$W/payload"
for i in 1 2 3 4; do head -c "$((PAYLOAD_MB / 4))M" /dev/urandom >"$W/payload/blob$i"; done
"$DF" create "$W/big.qcow2" -b a.qcow2 >/dev/null
"$DF" copy-in "$W/big.qcow2" "$W/payload" /opt >/dev/null
measure --prep "rm -f '$W/big.delta'; sync" --check "[ -s '$W/big.delta' ]" -- \
  "$DF" delta create "$W/a.qcow2" "$W/big.qcow2" -o "$W/big.delta"
t_dc=$MS
dsize=$(stat -c %s "$W/big.delta")
# Applied to a fresh overlay, the result must equal B (diff exits 0).
measure --prep "rm -f '$W/apply.qcow2'; '$DF' create '$W/apply.qcow2' -b a.qcow2 >/dev/null; sync" \
  --check "'$DF' diff '$W/apply.qcow2' '$W/big.qcow2' >'$W/check.out' 2>&1" -- \
  "$DF" delta apply "$W/apply.qcow2" "$W/big.delta"
t_da=$MS

vd="not installed"
if command -v virt-diff >/dev/null; then
  measure --runs 1 --rc 0 -- env LIBGUESTFS_BACKEND_SETTINGS=force_tcg virt-diff -a "$W/a.qcow2" -A "$W/b.qcow2"
  vd="$MS ms"
fi

emit <<MD
## Diff and deltas

\`bash bench/delta.sh\`. Whole commands, median of $RUNS run(s), images in the page cache.

| measure | diskfab | goal / reference |
|---|---|---|
| diff of two independent 2 GiB Debian qcow2 images ($n_ind differences; every same-size file hashed) | $t_ind ms | ≤ 2000 ms; virt-diff: $vd |
| diff of two clones of one base ($n_cl differences; fast path: only blocks written above the base) | $t_cl ms | ≤ 200 ms (\`--no-fast-path\`: $t_clfull ms) |
| delta create, $PAYLOAD_MB MiB of new files ($((dsize >> 20)) MiB delta) | $t_dc ms | |
| delta apply of that delta to a fresh overlay (verify, pre-images, write; result diffs equal to B) | $t_da ms | ≤ 2000 ms |
MD
