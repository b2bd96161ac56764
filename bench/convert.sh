#!/usr/bin/env bash
# Conversions: the 2 GiB Debian image plus a file of random bytes in its root filesystem (written
# with debugfs), converted by `diskfab convert` and `qemu-img convert` in the same run, in pairs
# that do the same work: same output format and options, the same durability, the source read
# into the page cache before every run of either tool. Every output is checked with
# `qemu-img compare` against the source and `qemu-img check` (where the format has metadata).
# Usage: bash bench/convert.sh [--quick]     (bench/run.sh calls it)
[ "${1:-}" = --quick ] && export BENCH_QUICK=1
source "$(dirname "$0")/lib.sh"
RANDOM_MB=${BENCH_RANDOM_MB:-$(pick 1024 32)}
NPROC=$(nproc)

# The input, built with qemu-img and e2fsprogs: the Debian fixture as raw, plus RANDOM_MB MiB of
# /dev/urandom written into its ext4 root (partition 1, through e2fsprogs' ?offset= syntax).
qemu-img convert -O raw "$FIX/debian-mbr.qcow2" "$W/src.raw"
read -r p1_start < <(sfdisk -d "$W/src.raw" | awk -F'[=,]' '/^[^ ]+1 : / {gsub(/ /, ""); print $2}')
FS="$W/src.raw?offset=$((p1_start * 512))"
head -c "${RANDOM_MB}M" /dev/urandom >"$W/random.bin"
debugfs -w -R "write $W/random.bin random.bin" "$FS" >/dev/null 2>"$W/debugfs.log"
debugfs -R "stat random.bin" "$FS" 2>/dev/null | grep "Size: $((RANDOM_MB << 20))" >/dev/null ||
  die "debugfs did not write random.bin: $(cat "$W/debugfs.log")"
e2fsck -fn "$FS" >/dev/null
rm -f "$W/random.bin"
qemu-img convert -f raw -O qcow2 "$W/src.raw" "$W/src.qcow2"
src_used=$(qemu-img map -f qcow2 --output=json "$W/src.qcow2" |
  python3 -c 'import json,sys; print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')

# check_out OUT SRC: the output reads back identical, and its metadata is clean.
check_out() {
  qemu-img compare -q "$2" "$1" || die "$1 differs from $2"
  local rc=0
  qemu-img check -q "$1" >"$W/check.log" 2>&1 || rc=$?
  # 63: the format has no consistency check (raw).
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 63 ]; then
    cat "$W/check.log" >&2
    die "qemu-img check $1 exited $rc"
  fi
}
alloc() { du -B1 "$1" | cut -f1; }

# Durability of each command, counted once on the first conversion: fsync-type calls.
durable_calls() { # OUT CMD...
  local out=$1 n
  shift
  rm -f "$out"
  n=$(sync_calls "$@")
  rm -f "$out"
  echo "$n"
}

declare -A T SIZE RSSK
rows=""
sizes=""
# bench LABEL SRC EXT "ARGS" [QARGS]: one conversion, every command the same options.
bench() {
  local label=$1 src=$2 ext=$3 args=$4 qargs=${5:-$4}
  local out=$W/out.$ext k
  local -a dargs qa
  read -ra dargs <<<"$args"
  read -ra qa <<<"$qargs"
  local prep="rm -f '$out'; sync; warm '$src'" check="check_out '$out' '$src'"
  measure --rss --prep "$prep" --check "$check" -- "$DF" convert "$src" "$out" "${dargs[@]}"
  T[d]=$MS; RSSK[d]=$RSS; SIZE[d]=$(alloc "$out")
  measure --rss --prep "$prep" --check "$check" -- "$DF" convert "$src" "$out" "${dargs[@]}" --no-sync
  T[dn]=$MS; RSSK[dn]=$RSS
  measure --rss --prep "$prep" --check "$check" -- qemu-img convert "${qa[@]}" "$src" "$out"
  T[q]=$MS; RSSK[q]=$RSS; SIZE[q]=$(alloc "$out")
  measure --rss --prep "$prep" --check "$check" -- qemu-img convert -t writeback "${qa[@]}" "$src" "$out"
  T[qw]=$MS; RSSK[qw]=$RSS
  measure --rss --prep "$prep" --check "$check" -- qemu-img convert -t writeback -W -m "$NPROC" "${qa[@]}" "$src" "$out"
  T[qW]=$MS; RSSK[qW]=$RSS
  rm -f "$out"
  for k in d dn q qw qW; do printf '%-30s %-3s %8s ms %8s KiB\n' "$label" "$k" "${T[$k]}" "${RSSK[$k]}"; done
  local dq="\`diskfab convert $args\`"
  rows+="| $label | default vs default: diskfab fsyncs the output, qemu-img (\`-t unsafe\`) does not | ${T[d]} ms | ${T[q]} ms | **$(ratio "${T[q]}" "${T[d]}")** |"$'\n'
  rows+="| $label | both durable: diskfab default vs qemu-img \`-t writeback\` | ${T[d]} ms | ${T[qw]} ms | **$(ratio "${T[qw]}" "${T[d]}")** |"$'\n'
  rows+="| $label | no flush of the data: diskfab \`--no-sync\` vs qemu-img default (\`-t unsafe\`) | ${T[dn]} ms | ${T[q]} ms | **$(ratio "${T[q]}" "${T[dn]}")** |"$'\n'
  rows+="| $label | both parallel and durable: diskfab default ($NPROC workers) vs qemu-img \`-t writeback -W -m $NPROC\` | ${T[d]} ms | ${T[qW]} ms | **$(ratio "${T[qW]}" "${T[d]}")** |"$'\n'
  sizes+="| $label | $dq | ${SIZE[d]} | ${SIZE[q]} | $(ratio3 "${SIZE[d]}" "${SIZE[q]}") | ${RSSK[d]} | ${RSSK[q]} |"$'\n'
}
bench "qcow2 → raw" "$W/src.qcow2" raw "-O raw"
bench "raw → qcow2" "$W/src.raw" qcow2 "-O qcow2" "-f raw -O qcow2"
bench "qcow2 → qcow2 -c zstd" "$W/src.qcow2" qcow2 "-O qcow2 -c -o compression_type=zstd"
bench "qcow2 → vmdk streamOptimized" "$W/src.qcow2" vmdk "-O vmdk -o subformat=streamOptimized"
bench "qcow2 → vhdx" "$W/src.qcow2" vhdx "-O vhdx"
bench "qcow2 → vdi" "$W/src.qcow2" vdi "-O vdi"

# What each side's cache mode means: fsync-type calls of each command, on a raw and a qcow2 output.
counts() { # SRC OUT QEMU-ARGS...
  local src=$1 out=$2
  shift 2
  local ext=${out##*.} d dn q qw qu
  d=$(durable_calls "$out" "$DF" convert "$src" "$out" -O "$ext")
  dn=$(durable_calls "$out" "$DF" convert "$src" "$out" -O "$ext" --no-sync)
  q=$(durable_calls "$out" qemu-img convert "$@" -O "$ext" "$src" "$out")
  qw=$(durable_calls "$out" qemu-img convert -t writeback "$@" -O "$ext" "$src" "$out")
  qu=$(durable_calls "$out" qemu-img convert -t unsafe "$@" -O "$ext" "$src" "$out")
  [ "$q" = "$qu" ] || die "qemu-img convert's default cache mode is not -t unsafe here ($q vs $qu fsync-type calls): relabel the rows"
  echo "diskfab $d, diskfab \`--no-sync\` $dn, qemu-img default $q, qemu-img \`-t writeback\` $qw"
}
c_raw=$(counts "$W/src.qcow2" "$W/count.raw")
c_qcow2=$(counts "$W/src.raw" "$W/count.qcow2" -f raw)

emit <<MD
## Conversions

\`bash bench/convert.sh\`. Input: the 2 GiB Debian fixture with a ${RANDOM_MB} MiB file of /dev/urandom written into its
ext4 root by \`debugfs\`, $((src_used >> 20)) MiB of guest data; qcow2 sources made by \`qemu-img convert\`. Whole commands,
median of $RUNS run(s); before every run of either tool the output is removed, \`sync\` runs and the source is read
into the page cache (untimed). Every output passed \`qemu-img compare\` against the source and \`qemu-img check\`.

Durability: \`diskfab convert\` fdatasyncs the output at the end; \`--no-sync\` skips that. qemu-img's default
cache mode for convert is \`-t unsafe\` (no flush of the data; verified here: the same fsync-type call count as an
explicit \`-t unsafe\`), \`-t writeback\` flushes at the end. fsync-type calls (fsync, fdatasync, syncfs, sync)
counted by \`strace\`: qcow2 → raw: $c_raw; raw → qcow2 (both tools also sync the new image's
metadata when creating it): $c_qcow2. diskfab converts with one worker per core ($NPROC); qemu-img runs 8 coroutines
by default and writes in guest order; \`-W\` lets it write out of order and \`-m $NPROC\` matches diskfab's workers.

q/d = qemu-img time / diskfab time; > 1 means diskfab is faster.

| conversion | pairing | diskfab | qemu-img | q/d |
|---|---|---|---|---|
${rows}
Output size (allocated bytes on the host, d/q < 1 means diskfab's output is smaller) and peak RSS, default
commands of both tools:

| conversion | diskfab command | diskfab bytes | qemu-img bytes | d/q | diskfab peak RSS (KiB) | qemu-img peak RSS (KiB) |
|---|---|---|---|---|---|---|
${sizes}
MD
