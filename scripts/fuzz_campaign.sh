#!/usr/bin/env bash
# The long fuzz campaign (not run in CI): every target in fuzz/Cargo.toml in turn for MINUTES
# each (one libFuzzer process per target, no -jobs/-workers), or N at a time with --parallel [N]
# (default 2); then writes docs/fuzzing.md WHOLE from the libFuzzer logs kept in
# fuzz/artifacts/campaign-logs/ (executions, exec/s, final cov/ft, corpus, crashes per target,
# each with its own date; machine, toolchain). Nothing in that file is kept by hand: edit the
# template below instead. Crash inputs are copied to fuzz/regressions/<target>/ (fix the parser,
# commit the input, bump its pinned count).
# Usage: bash scripts/fuzz_campaign.sh [MINUTES_PER_TARGET] [--parallel [N]] [--only "T1 T2 ..."]
#        bash scripts/fuzz_campaign.sh --report     (rewrite docs/fuzzing.md from the kept logs)
# --only reruns just those targets and keeps the other targets' logs from earlier campaigns.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=10; PAR=1; ONLY=""; REPORT=0
while [ $# -gt 0 ]; do
  case $1 in
    --parallel) PAR=2; if [[ ${2:-} =~ ^[0-9]+$ ]]; then PAR=$2; shift; fi ;;
    --only) ONLY=${2:?--only needs a list of targets}; shift ;;
    --report) REPORT=1 ;;
    [0-9]*) MIN=$1 ;;
    *) echo "usage: bash scripts/fuzz_campaign.sh [MINUTES] [--parallel [N]] [--only \"T ...\"] | --report" >&2; exit 2 ;;
  esac
  shift
done
SECS=$(python3 -c "print(max(1, round(float('$MIN') * 60)))")
TARGETS=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^diskfab-fuzz$')
RUN=${ONLY:-$TARGETS}
for t in $RUN; do grep -x "$t" <<<"$TARGETS" >/dev/null || { echo "no fuzz target '$t' in fuzz/Cargo.toml" >&2; exit 2; }; done
LOGS=fuzz/artifacts/campaign-logs
if [ "$REPORT" = 0 ]; then
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -O -a)
BIN=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
for t in $TARGETS; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
done
# Not under RUSTC_BOOTSTRAP: make_seeds runs the debug diskfab, whose build that variable would redo.
env -u RUSTC_BOOTSTRAP bash fuzz/make_seeds.sh fuzz/corpus --full >/dev/null
[ -n "$ONLY" ] || rm -rf "$LOGS"
mkdir -p "$LOGS"

# one TARGET: a single libFuzzer process for SECS seconds; the log is kept for the table.
one() {
  local t=$1 max=() t0 t1
  case $t in qcow2 | vdi | vhd | vmdk | vhdx | mbr_gpt | fat_dotfix | ntfs) max=(-max_len=1048576) ;; esac
  rm -f fuzz/artifacts/"$t"/* "$LOGS/$t".*
  t0=$(date +%s)
  printf '%s; load %s at the start, ' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$LOGS/$t.when"
  echo "$PAR" >"$LOGS/$t.par"
  /usr/bin/time -f '%U %S' -o "$LOGS/$t.cpu" \
    "$BIN/$t" "fuzz/corpus/$t" -max_total_time="$SECS" "${max[@]}" -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$LOGS/$t.log" 2>&1 || true
  t1=$(date +%s); echo $((t1 - t0)) >"$LOGS/$t.secs"
  printf '%s at the end' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOGS/$t.when"
  for a in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/timeout-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/leak-*; do
    [ -f "$a" ] && mkdir -p "fuzz/regressions/$t" && cp "$a" "fuzz/regressions/$t/"
  done
  ls "fuzz/corpus/$t" | wc -l >"$LOGS/$t.corpus"
  echo "campaign: $t done ($((t1 - t0))s)" >&2
}
running=0
for t in $RUN; do
  one "$t" & running=$((running + 1))
  if [ "$running" -ge "$PAR" ]; then wait -n; running=$((running - 1)); fi
done
wait
fi

# The table: from each log's final stats and its last status line (libFuzzer's own figures).
row() {
  local t=$1 l=$LOGS/$1.log last runs eps cov ft corp crashes cpu
  if [ ! -f "$LOGS/$t.secs" ]; then
    printf '| `%s` | not run yet | | | | | | | | |\n' "$t"; return
  fi
  last=$(grep -E '^#[0-9]+' "$l" | grep -E 'cov: ' | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$l" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last"); ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  crashes=$(ls fuzz/artifacts/"$t"/ 2>/dev/null | grep -cE '^(crash|timeout|oom|leak)-' || true)
  cpu=$(awk 'END {printf "%.0f", $1 + $2}' "$LOGS/$t.cpu" 2>/dev/null || echo '?')
  printf '| `%s` | %s | %s | %s | %s | %s | %s | %s | %s (%s files) | %s |\n' "$t" "$(sed -n 's/ UTC.*//p' "$LOGS/$t.when" 2>/dev/null)" "$(cat "$LOGS/$t.secs")" "$cpu" \
    "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$(cat "$LOGS/$t.corpus")" "$crashes"
}
# Every input a fuzzer ever crashed on, kept (and replayed by the tests) under fuzz/regressions/.
regressions() {
  local t n any=0
  for t in $TARGETS; do
    n=$(find "fuzz/regressions/$t" -type f -name '*-*' 2>/dev/null | wc -l)
    [ "$n" = 0 ] && continue
    any=1
    printf -- '- `%s`: %s input(s): %s\n' "$t" "$n" "$(find "fuzz/regressions/$t" -type f -name '*-*' -printf '`%f` ' | sort)"
  done
  [ "$any" = 1 ] || echo "- none"
}
PAR_MAX=$(cat "$LOGS"/*.par 2>/dev/null | sort -n | tail -1); PAR_MAX=${PAR_MAX:-1}
CPU=$(sed -n '/^model name/{s/^model name\s*: //p;q}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
{
cat <<EOF
# Fuzzing

<!-- Generated by scripts/fuzz_campaign.sh; do not edit by hand (edit the script's template). -->

Every parser that reads bytes from an image or from a file inside one has a
[cargo-fuzz](https://github.com/rust-fuzz/cargo-fuzz) target in \`fuzz/fuzz_targets/\`, calling a
small \`fuzz_*\` entry point in the crate that owns the parser. Committed seeds
(\`fuzz/seeds/<target>/\`, written by \`fuzz/make_seeds.sh\` from reference tools and files of a
real Debian tree) and every input a fuzzer ever crashed on (\`fuzz/regressions/<target>/\`) are
replayed by the workspace test \`crates/diskfab-core/tests/fuzz_regressions.rs\`, which pins how
many inputs each target replays and checks that every seed reaches real parsing.

- CI: \`bash scripts/fuzz.sh\` runs each target for 10 s (two at a time) after the tests; a crash
  fails it and saves the input under \`fuzz/regressions/<target>/\`.
- Campaign: \`bash scripts/fuzz_campaign.sh [MINUTES_PER_TARGET] [--parallel [N]]\` (default 10 minutes,
  one target at a time) regenerates this file.

## Last campaign

- One libFuzzer process per target (no \`-jobs\`/\`-workers\`), up to $PAR_MAX target(s) at a time; each
  row gives when its target ran ("date", UTC) and for how long. Targets rerun with \`--only\` have a
  later date than the rest.
- Machine: $(uname -m), $(nproc) cores ($CPU), $MEM, Linux $(uname -r). "seconds" is wall time,
  "CPU s" the CPU time the target's process got (user + system): on a loaded machine the second is
  the honest measure. Load averages per target are in \`fuzz/artifacts/campaign-logs/<target>.when\`.
- Toolchain: $(rustc -V) (nightly features through RUSTC_BOOTSTRAP), $(cargo fuzz --version 2>/dev/null || echo cargo-fuzz), libfuzzer-sys $(awk '/name = "libfuzzer-sys"/ {getline; gsub(/[^0-9.]/, ""); print}' fuzz/Cargo.lock); release build with overflow checks and AddressSanitizer (\`cargo fuzz build -O -a\`).

Coverage is libFuzzer's own: \`cov\` = covered code edges, \`ft\` = features (edges with hit counts
and comparison operands), both from the last status line. \`corpus\` is libFuzzer's in-memory
corpus at the end (units/bytes) and the files in \`fuzz/corpus/<target>/\`. libFuzzer stops a
target at its first crash, so "crashes" is 0 or 1 per target.

| target | date | seconds | CPU s | executions | exec/s | cov | ft | corpus | crashes |
|---|---|---:|---:|---:|---:|---:|---:|---|---:|
EOF
for t in $TARGETS; do row "$t"; done
cat <<EOF

A crash stops its target early (fewer seconds than the others); its input is fixed and kept.

## Inputs that crashed a parser (all fixed; replayed by every test run)

$(regressions)
EOF
cat <<'EOF'

## Adding a target

1. In the crate that owns the parser, add a small `pub fn fuzz_xxx(data: &[u8]) -> usize`
   (`#[doc(hidden)]` is fine) that splits the input as the parser needs it (a selector byte, NUL
   separators), must never panic, and returns how many items it parsed.
2. Add `fuzz/fuzz_targets/xxx.rs` calling it and a `[[bin]]` entry in `fuzz/Cargo.toml`; the
   scripts find targets there.
3. Make seeds from real material in `fuzz/make_seeds.sh` (reference tools, real files; keep each
   target under ~256 KiB), run `bash fuzz/make_seeds.sh`, and add a replay test with the pinned
   seed count in `crates/diskfab-core/tests/fuzz_regressions.rs`.
EOF
} >docs/fuzzing.md
echo "campaign: wrote docs/fuzzing.md (logs in $LOGS)" >&2
