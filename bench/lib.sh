# Shared by every bench script (sourced, not run). What it guarantees:
#  - strict mode everywhere (errexit, nounset, pipefail, inherit_errexit, errtrace) and an ERR trap
#    that names the failing command: an unmeasured step that fails stops the benchmark too;
#  - `measure`, the one timing helper: it runs a command, requires its exit status, runs its
#    output check, and only then records the time. A failure prints the command and its stderr and
#    exits non-zero; no time is recorded for it.
# Settings (exported by bench/run.sh; a section script run alone gets the full sizes):
#   BENCH_QUICK=1          small sizes, one run each (a fast check that the scripts work)
#   DISKFAB=PATH           the diskfab binary to measure (default: build target/release/diskfab)
#   BENCH_FRAG=FILE        where a section script writes its Markdown (default: stdout)
#   BENCH_SELFTEST_FAIL=V  self-test: diskfab verb V exits 1 (V=convert-corrupt: convert succeeds
#                          but its output is damaged); the benchmark must then fail
set -eEuo pipefail
shopt -s inherit_errexit
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."
trap 'echo "bench: FAILED at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND" >&2' ERR

BENCH_QUICK=${BENCH_QUICK:-0}
quick() { [ "$BENCH_QUICK" = 1 ]; }
# pick FULL QUICK: the value for this mode.
pick() { if quick; then echo "$2"; else echo "$1"; fi; }
RUNS=$(pick 3 1)

die() {
  echo "bench: FAILED: $*" >&2
  exit 1
}

# One-time setup shared by run.sh and the section scripts it calls: dependencies, fixtures,
# the binary. Sets FIX and DF_REAL.
if [ -z "${BENCH_READY:-}" ]; then
  bash scripts/deps.sh
  FIX=$(bash scripts/fixtures.sh)
  if [ -n "${DISKFAB:-}" ]; then
    DF_REAL=$DISKFAB
  else
    cargo build --release -q -p diskfab-cli
    DF_REAL=${CARGO_TARGET_DIR:-$PWD/target}/release/diskfab
  fi
  [ -x "$DF_REAL" ] || die "no diskfab binary at $DF_REAL"
  export FIX DF_REAL BENCH_READY=1
fi

# The work directory: on the project disk (on this VM /var/tmp is much slower to create files in).
mkdir -p target
W=$(mktemp -d "$PWD/target/bench.XXXXXX")
CLEANUP=()
bench_cleanup() {
  local c
  for c in "${CLEANUP[@]}"; do eval "$c" || echo "bench: cleanup failed: $c" >&2; done
  rm -rf "$W"
}
trap bench_cleanup EXIT

# DF is what the scripts run. For the self-test it is a wrapper that makes one verb fail.
DF=$DF_REAL
if [ -n "${BENCH_SELFTEST_FAIL:-}" ]; then
  DF=$W/diskfab-selftest
  cat >"$DF" <<'SH'
#!/usr/bin/env bash
# bench self-test: BENCH_SELFTEST_FAIL=VERB makes `diskfab VERB` exit 1;
# BENCH_SELFTEST_FAIL=convert-corrupt lets convert succeed, then damages its output (argument 3).
case "$BENCH_SELFTEST_FAIL" in
  "$1") echo "self-test: diskfab $1 made to fail" >&2; exit 1 ;;
  "$1-corrupt")
    "$DF_REAL" "$@" || exit
    printf 'self-test damage' | dd of="$3" bs=1 seek=$((1 << 20)) conv=notrunc status=none
    exit 0 ;;
esac
exec "$DF_REAL" "$@"
SH
  chmod +x "$DF"
fi

# The command as a shell line, for messages.
show() { printf '%q ' "$@"; }

now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# measure [--runs N] [--prep SH] [--check SH] [--rc N] [--out FILE] [--rss] -- CMD...
#   Runs CMD N times (default $RUNS). Before each run, untimed: the shell line SH of --prep (e.g.
#   remove the output, read the input into the page cache, sync). Each run must exit with status
#   --rc (default 0), and then the shell line of --check must succeed (it can read CMD's stdout
#   in $OUT and stderr in $W/.err). Only then is the run's time kept. Anything else stops the
#   benchmark with the command, its exit status and its stderr.
#   Sets MS (median wall time in milliseconds) and, with --rss, RSS (the largest peak RSS in KiB,
#   measured by /usr/bin/time around CMD).
measure() {
  local runs=$RUNS prep="" check="" want=0 rss=0 i a b rc
  OUT=$W/.out
  while [ "$1" != -- ]; do
    case $1 in
      --runs) runs=$2; shift 2 ;;
      --prep) prep=$2; shift 2 ;;
      --check) check=$2; shift 2 ;;
      --rc) want=$2; shift 2 ;;
      --out) OUT=$2; shift 2 ;;
      --rss) rss=1; shift ;;
      *) die "measure: unknown option $1" ;;
    esac
  done
  shift
  local ts=()
  RSS=0
  for ((i = 0; i < runs; i++)); do
    if [ -n "$prep" ]; then eval "$prep"; fi
    a=$(now_us)
    # In the background so that errexit stays in force inside shell functions being measured
    # (bash ignores it in functions called from an `||` list).
    if [ "$rss" = 1 ]; then
      /usr/bin/time -f %M -o "$W/.rss" "$@" >"$OUT" 2>"$W/.err" &
    else
      "$@" >"$OUT" 2>"$W/.err" &
    fi
    rc=0
    wait $! || rc=$?
    b=$(now_us)
    if [ "$rc" -ne "$want" ]; then
      {
        echo "bench: FAILED: command exited $rc (expected $want): $(show "$@")"
        tail -n 20 "$W/.err" | sed 's/^/  | /'
      } >&2
      exit 1
    fi
    if [ -n "$check" ]; then
      (eval "$check") &
      wait $! || die "output check failed: $check  (after: $(show "$@"))"
    fi
    if [ "$rss" = 1 ]; then
      local m
      m=$(tail -n 1 "$W/.rss")
      if [ "$m" -gt "$RSS" ]; then RSS=$m; fi
    fi
    ts+=($((b - a)))
  done
  MS=$(printf '%s\n' "${ts[@]}" | sort -n | awk '{v[NR] = $1} END {m = v[int((NR + 1) / 2)] / 1000; printf(m < 100 ? "%.1f" : "%.0f", m)}')
}

# ratio A B: A / B with two decimals ("-" when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }
# ratio3 A B: the same with three decimals (sizes).
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.3f", a / b }'; }
# per_s N MS: how many per second.
per_s() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / (t / 1000) }'; }

# Where a section's Markdown goes.
emit() {
  if [ -n "${BENCH_FRAG:-}" ]; then cat >"$BENCH_FRAG"; else cat; fi
}

# Syscalls of one run of CMD that make data durable (fsync, fdatasync, syncfs, sync): prints the
# count. Used to label what each side of a comparison includes.
sync_calls() {
  strace -f -qq -o "$W/.strace" -e trace=fsync,fdatasync,syncfs,sync,sync_file_range "$@" >/dev/null 2>"$W/.err" ||
    die "$(show "$@") failed under strace: $(tail -n 5 "$W/.err")"
  awk '/(^|[ ])(fsync|fdatasync|syncfs|sync|sync_file_range)\(/ { n++ } END { print n + 0 }' "$W/.strace"
}

# warm FILE...: reads files into the page cache (both tools then start from the same cache state).
warm() { cat "$@" >/dev/null; }
