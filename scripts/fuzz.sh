#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target in fuzz/Cargo.toml (libFuzzer), two at a time.
# The working corpus fuzz/corpus/<target>/ (gitignored) starts from the committed seeds
# (fuzz/seeds) plus longer image seeds made fresh by the reference tools (fuzz/make_seeds.sh
# --full). A crash fails the run; its input is copied to fuzz/regressions/<target>/, where the
# workspace test crates/diskfab-core/tests/fuzz_regressions.rs replays it forever after (commit
# it with the fix and bump that target's pinned regression count).
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
JOBS=${DISKFAB_FUZZ_JOBS:-2}
TARGETS=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^diskfab-fuzz$')
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
# libFuzzer needs -Z flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
# Release code with overflow checks (-a), as the replay test (a debug build) runs it.
(cd fuzz && cargo fuzz build -O -a)
BIN=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
for t in $TARGETS; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
done
# Not under RUSTC_BOOTSTRAP: make_seeds runs the debug diskfab, whose build that variable would redo.
env -u RUSTC_BOOTSTRAP bash fuzz/make_seeds.sh fuzz/corpus --full >/dev/null
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT

# run TARGET: fuzzes TARGET for SECS; on a crash saves the input as a regression and fails.
run() {
  local t=$1 log=$S/$1.log max=()
  case $t in qcow2 | vdi | vhd | vmdk | vhdx | mbr_gpt | fat_dotfix | ntfs) max=(-max_len=1048576) ;; esac
  if "$BIN/$t" "fuzz/corpus/$t" -max_total_time="$SECS" "${max[@]}" -rss_limit_mb=2048 \
      -timeout=30 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
    echo "fuzz: $t: $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") runs in ${SECS}s," \
      "$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)" >&2
    return 0
  fi
  tail -40 "$log" >&2
  mkdir -p "fuzz/regressions/$t"
  for a in fuzz/artifacts/"$t"/*; do
    [ -f "$a" ] && cp "$a" "fuzz/regressions/$t/" && echo "fuzz: $t: saved $a as fuzz/regressions/$t/$(basename "$a")" >&2
  done
  echo "fuzz: $t FAILED: fix the parser, commit the input under fuzz/regressions/$t/ and bump its" \
    "pinned count in crates/diskfab-core/tests/fuzz_regressions.rs" >&2
  return 1
}

status=0; running=0
for t in $TARGETS; do
  rm -f fuzz/artifacts/"$t"/*
  run "$t" & running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || status=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || status=1; running=$((running - 1)); done
[ "$status" = 0 ] && echo "fuzz: all $(echo $TARGETS | wc -w) targets ran ${SECS}s without a crash" >&2
exit $status
