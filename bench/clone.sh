#!/usr/bin/env bash
# Clone rate: N thin qcow2 overlays of the Debian fixture, made by `diskfab clone --count N` (one
# process) and by loops of one command per clone (`diskfab create -b`, `qemu-img create -b`), on
# the project disk and on tmpfs. Each method is labelled with what it includes: process starts and
# the fsync-type calls counted with strace on one clone. Every run's clones are checked (count,
# `qemu-img check`, backing file and size from `qemu-img info`).
# Usage: bash bench/clone.sh [--quick]     (bench/run.sh calls it)
[ "${1:-}" = --quick ] && export BENCH_QUICK=1
source "$(dirname "$0")/lib.sh"
N=${BENCH_CLONES:-$(pick 1000 100)}
BASE_SIZE=$(qemu-img info --output=json "$FIX/debian-mbr.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')

# check_clones DIR: N overlays named base-<i>.qcow2, clean, on ../base.qcow2, of the base's size.
check_clones() {
  local d=$1 n f
  n=$(find "$d" -maxdepth 1 -name 'base-*.qcow2' | wc -l)
  [ "$n" -eq "$N" ] || die "$d holds $n clones, expected $N"
  for f in "$(find "$d" -name 'base-*.qcow2' | sort | sed -n 1p)" "$(find "$d" -name 'base-*.qcow2' | sort | tail -n 1)"; do
    qemu-img check -q "$f"
    qemu-img info --output=json "$f" >"$W/info.json"
    grep -q '"format": "qcow2"' "$W/info.json" || die "$f is not qcow2"
    grep -q '"backing-filename": "../base.qcow2"' "$W/info.json" || die "$f: wrong backing file"
    grep -q "\"virtual-size\": $BASE_SIZE," "$W/info.json" || die "$f: wrong size"
  done
}
fresh() { rm -rf "$1"; mkdir "$1"; sync; }

bulk() { "$DF" clone "$1/base.qcow2" --count "$N" --out "$1/c"; }
bulk_synced() { bulk "$1"; sync -f "$1/c"; }
df_loop() {
  cd "$1/c"
  for i in $(seq -w 1 "$N"); do "$DF" create -b ../base.qcow2 "base-$i.qcow2" >/dev/null; done
}
q_loop() {
  cd "$1/c"
  for i in $(seq -w 1 "$N"); do qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 "base-$i.qcow2"; done
}
touch_all() { cd "$1/c" && seq -w 1 "$N" | sed 's/.*/base-&.qcow2/' | xargs touch; }
true_loop() { for _ in $(seq "$N"); do /bin/true; done; }

declare -A T
for fs in disk tmpfs; do
  if [ "$fs" = disk ]; then
    d=$W/clones
    mkdir -p "$d"
  else
    d=$(mktemp -d /dev/shm/diskfab-bench.XXXXXX)
    CLEANUP+=("rm -rf '$d'")
  fi
  cp "$FIX/debian-mbr.qcow2" "$d/base.qcow2"
  warm "$d/base.qcow2"
  # The one-process method is measured as the command itself, the others as shell functions.
  measure --prep "fresh '$d/c'" --check "check_clones '$d/c'" -- "$DF" clone "$d/base.qcow2" --count "$N" --out "$d/c"
  T[bulk.$fs]=$MS
  for m in bulk_synced df_loop q_loop touch_all; do
    measure --prep "fresh '$d/c'" --check "$([ "$m" = touch_all ] || echo "check_clones '$d/c'")" -- "$m" "$d"
    T[$m.$fs]=$MS
  done
  for m in bulk bulk_synced df_loop q_loop touch_all; do printf '%-12s %-6s %10s ms\n' "$m" "$fs" "${T[$m.$fs]}"; done
  measure -- true_loop
  T[true_loop.$fs]=$MS
  rm -rf "$d/c"
done

# Durability of each method: fsync-type calls for one clone.
SY=$W/clones
mkdir "$SY/c"
s_bulk=$(sync_calls "$DF" clone "$SY/base.qcow2" --count 1 --out "$SY/c")
s_df=$(cd "$SY/c" && sync_calls "$DF" create -b ../base.qcow2 one.qcow2)
s_q=$(cd "$SY/c" && sync_calls qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 two.qcow2)
calls() { if [ "$1" = 0 ]; then echo "no fsync"; else echo "$1 fsync/fdatasync call(s)"; fi; }

cell() { echo "${T[$1.$2]} ms ($(per_s "$N" "${T[$1.$2]}")/s)"; }
row() { echo "| $1 | $2 | $(cell "$3" disk) | $(cell "$3" tmpfs) |"; }
pair() { echo "| $1 | $(ratio "${T[$2.disk]}" "${T[$3.disk]}") | $(ratio "${T[$2.tmpfs]}" "${T[$3.tmpfs]}") |"; }
emit <<MD
## Clones: $N thin qcow2 overlays

\`bash bench/clone.sh\`. $N overlays of the 2 GiB Debian qcow2 (\`../base.qcow2\`, qcow2 backing format), on the
project disk ($(df -T "$W" | awk 'NR == 2 {print $2}')) and on tmpfs. Median of $RUNS run(s), each into a fresh, empty
directory (\`sync\` before, untimed). Every run's clones were checked: $N files, \`qemu-img check\` clean and
\`qemu-img info\` (backing file, size) right for the first and last. "fsync" counts are the fsync, fdatasync,
syncfs and sync calls \`strace\` saw while the method made one clone. tmpfs ignores fsync, so there the loops
cost process starts and the tools' own work.

| method | what each clone includes | disk | tmpfs |
|---|---|---|---|
$(row "\`diskfab clone base.qcow2 --count $N\`" "no process start (one for all $N); $(calls "$s_bulk")" bulk)
$(row "\`diskfab clone … --count $N\` then \`sync -f\`" "no process start; one syncfs for all $N at the end" bulk_synced)
$(row "loop: \`diskfab create -b ../base.qcow2 base-\$i.qcow2\`" "a process start; opening the base; $(calls "$s_df")" df_loop)
$(row "loop: \`qemu-img create -f qcow2 -b ../base.qcow2 -F qcow2 base-\$i.qcow2\`" "a process start; opening the base; $(calls "$s_q")" q_loop)
$(row "reference: \`touch\` $N empty files (one process)" "the filesystem's cost of a new file" touch_all)
$(row "reference: loop of $N \`/bin/true\`" "a process start only" true_loop)

q/d = the qemu-img (or loop) time / the diskfab time; > 1 means diskfab is faster.

| pairing | disk q/d | tmpfs q/d |
|---|---|---|
$(pair "one command per clone on both sides: qemu-img create loop / diskfab create loop (fsync counts above)" q_loop df_loop)
$(pair "durable at the end on both sides: qemu-img create loop / \`diskfab clone\` + \`sync -f\`" q_loop bulk_synced)
$(pair "as typed: qemu-img create loop / \`diskfab clone\` (no fsync; qemu-img fsyncs each clone)" q_loop bulk)
$(pair "our own loop / \`diskfab clone\`: what one process for all clones saves" df_loop bulk)
MD
