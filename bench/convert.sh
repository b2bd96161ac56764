#!/usr/bin/env bash
# Conversion benchmark (issue 3): the 2 GiB Debian qcow2 plus a 1 GiB random file in its root
# filesystem, converted by `diskfab convert` and `qemu-img convert` side by side in the same run:
# qcow2->raw, raw->qcow2, qcow2->qcow2 (zstd), qcow2->vmdk streamOptimized, qcow2->vhdx.
# Median of 3 runs each; every output is checked with `qemu-img compare` against the source and
# `qemu-img check` (where the format supports it): any mismatch fails the benchmark.
# Appends its section to docs/bench.md (replacing an older copy of the same section).
# Usage: bash bench/convert.sh      (bench/run.sh calls it; needs root for the loop mount)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
FIX=$(bash scripts/fixtures.sh)
cargo build --release -q -p diskfab-cli
DF=${CARGO_TARGET_DIR:-$PWD/target}/release/diskfab
mkdir -p target; W=$(mktemp -d "$PWD/target/bench-convert.XXXXXX")
MNT=""; LOOP=""
cleanup() {
  if [ -n "$MNT" ]; then umount "$MNT" 2>/dev/null || true; fi
  if [ -n "$LOOP" ]; then losetup -d "$LOOP" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s%N; }

# The input, built once with the kernel and qemu-img: Debian fixture + 1 GiB of /dev/urandom.
qemu-img convert -O raw "$FIX/debian-mbr.qcow2" "$W/src.raw"
[ "$(stat -c %s "$W/src.raw")" -eq $((2 << 30)) ] || { echo "fixture is not 2 GiB" >&2; exit 1; }
# Partition 1 through an offset loop device (partition nodes need udev, absent in containers).
read -r p1_start p1_sectors < <(sfdisk -d "$W/src.raw" | awk -F'[=,]' '/^[^ ]+1 : / {gsub(/ /,""); print $2, $4}')
LOOP=$(losetup -f --show -o $((p1_start * 512)) --sizelimit $((p1_sectors * 512)) "$W/src.raw")
MNT="$W/mnt"; mkdir -p "$MNT"
mount "$LOOP" "$MNT"
head -c 1G /dev/urandom > "$MNT/random.bin"
umount "$MNT"; MNT=""
losetup -d "$LOOP"; LOOP=""
qemu-img convert -f raw -O qcow2 "$W/src.raw" "$W/src.qcow2"
src_used=$(qemu-img map -f qcow2 --output=json "$W/src.qcow2" |
  python3 -c 'import json,sys; print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')

# check_out FILE SRC: the output must read back identical and its metadata must be clean.
check_out() {
  qemu-img compare -q "$2" "$1" || { echo "FAIL: $1 differs from $2" >&2; exit 1; }
  local rc=0; qemu-img check -q "$1" >/dev/null 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 63 ]; then
    qemu-img check "$1" >&2 || true; echo "FAIL: qemu-img check $1 exited $rc" >&2; exit 1
  fi
}
# run3 TOOL OUT SRC CMD...: three timed runs (after one untimed warm-up run that also reads the
# source into the page cache for both tools alike); prints "median_ms peak_rss_kib".
run3() {
  local out=$1 src=$2; shift 2
  local ts=() rss=0 r a
  for r in 0 1 2 3; do
    rm -f "$out"; sync
    a=$(now)
    /usr/bin/time -f %M -o "$W/rss" "$@" >/dev/null
    local t=$(( ($(now) - a) / 1000 ))
    [ "$r" -eq 0 ] && continue
    ts+=("$t"); local m; m=$(tail -1 "$W/rss"); [ "$m" -gt "$rss" ] && rss=$m
  done
  check_out "$out" "$src"
  printf '%s %s\n' "$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p | awk '{printf "%.0f", $1/1000}')" "$rss"
}
alloc() { du -B1 "$1" | cut -f1; }

rows=""
printf '%-30s %10s %10s %7s %14s %14s %7s %9s\n' conversion "diskfab" "qemu-img" "q/d" "diskfab bytes" "qemu bytes" "d/q" "rss KiB"
bench() { # label src ext "diskfab args" "qemu-img args"
  local label=$1 src=$2 ext=$3 dargs=$4 qargs=$5
  local d q sd sq res drss qrss
  # shellcheck disable=SC2086
  res=$(run3 "$W/d.$ext" "$src" "$DF" convert "$src" "$W/d.$ext" $dargs); read -r d drss <<<"$res"
  sd=$(alloc "$W/d.$ext")
  # shellcheck disable=SC2086
  res=$(run3 "$W/q.$ext" "$src" qemu-img convert -t writeback $qargs "$src" "$W/q.$ext"); read -r q qrss <<<"$res"
  sq=$(alloc "$W/q.$ext")
  local tr sr
  tr=$(awk -v a="$q" -v b="$d" 'BEGIN{printf "%.2f", a/b}')
  sr=$(awk -v a="$sd" -v b="$sq" 'BEGIN{printf "%.3f", a/b}')
  printf '%-30s %10s %10s %7s %14s %14s %7s %9s\n' "$label" "$d ms" "$q ms" "$tr" "$sd" "$sq" "$sr" "$drss"
  rows+="| $label | $d ms | $q ms | **$tr** | $sd | $sq | $sr | $drss KiB ($qrss) |"$'\n'
  rm -f "$W/d.$ext" "$W/q.$ext"
}
bench "qcow2 → raw" "$W/src.qcow2" raw "-O raw" "-O raw"
bench "raw → qcow2" "$W/src.raw" qcow2 "-O qcow2" "-f raw -O qcow2"
bench "qcow2 → qcow2 -c zstd" "$W/src.qcow2" qcow2 "-O qcow2 -c -o compression_type=zstd" "-O qcow2 -c -o compression_type=zstd"
bench "qcow2 → vmdk streamOptimized" "$W/src.qcow2" vmdk "-O vmdk -o subformat=streamOptimized" "-O vmdk -o subformat=streamOptimized"
bench "qcow2 → vhdx" "$W/src.qcow2" vhdx "-O vhdx" "-O vhdx"

H="## Conversion (issue 3)"
table=$(cat <<MD

$H

Run: $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; \`bash bench/convert.sh\`; $(qemu-img --version | head -1).
Input: the 2 GiB Debian fixture with a 1 GiB file of /dev/urandom copied into its ext4 root (kernel loop mount),
$((src_used >> 20)) MiB of guest data. Whole commands, median of 3 after one warm-up run of each (the source is in the
page cache for both tools). Both tools make the output durable: diskfab fsyncs, qemu-img runs with \`-t writeback\`
(its default \`-t unsafe\` skips the final flush). Every output passed \`qemu-img compare\` against the source and
\`qemu-img check\` (raw: not applicable). Sizes are allocated bytes on the host. Goal: q/d ≥ 1.0, d/q ≤ 1.02.

| conversion | diskfab | qemu-img | q/d | diskfab bytes | qemu-img bytes | d/q | peak RSS diskfab (qemu-img) |
|---|---|---|---|---|---|---|---|
${rows}
MD
)
echo "$table"
# Replace this section if an earlier run left it, keep every other section as it is.
python3 - "$H" <<'PY'
import sys
h = sys.argv[1]
p = "docs/bench.md"
lines = open(p).read().split("\n")
out, skip = [], False
for l in lines:
    if l == h:
        skip = True
        if out and out[-1] == "":
            out.pop()
        continue
    if skip and l.startswith("## "):
        skip = False
    if not skip:
        out.append(l)
open(p, "w").write("\n".join(out).rstrip("\n") + "\n")
PY
echo "$table" >> docs/bench.md
