#!/usr/bin/env bash
# diskfab benchmarks: runs every section script and writes docs/bench.md whole (header, then each
# section's Markdown as the section script made it in this run; nothing is kept from older runs).
# A measured command that fails, or whose output check fails, stops the run with the command
# printed and exit status 1; the document is then left as it was.
# Usage: bash bench/run.sh            full sizes, writes docs/bench.md (run it on a quiet machine)
#        bash bench/run.sh --quick    small sizes, one run each, writes target/bench-quick.md
# Environment: DISKFAB=PATH (binary to measure, default: a release build), BENCH_DOC=FILE (output),
# BENCH_SELFTEST_FAIL=VERB (self-test: that diskfab verb fails; the run must fail; see bench/lib.sh).
QUICK=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    *) echo "usage: bash bench/run.sh [--quick]" >&2; exit 2 ;;
  esac
done
export BENCH_QUICK=$QUICK
source "$(dirname "$0")/lib.sh"
if quick; then DOC=${BENCH_DOC:-target/bench-quick.md}; else DOC=${BENCH_DOC:-docs/bench.md}; fi
SECTIONS=(clone convert read stamp delta catalog)

T0=$(now_us)
for s in "${SECTIONS[@]}"; do
  echo "== bench/$s.sh" >&2
  BENCH_FRAG=$W/$s.md bash "bench/$s.sh"
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock bench 2>/dev/null)" ]; then
  commit="$commit + uncommitted changes"
fi
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "# diskfab benchmarks"
  echo
  echo "Generated whole by \`bash bench/run.sh$([ "$QUICK" = 1 ] && echo " --quick")\` — do not edit; rerun it."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); total run time $(( ($(now_us) - T0) / 1000000 )) s"
  echo "- machine: $(nproc) cores ($cpu), $mem memory, Linux $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- work directory filesystem: $(df -T "$W" | awk 'NR == 2 {print $2}'); tmpfs for the tmpfs rows"
  echo "- $(qemu-img --version | sed -n 1p)"
  echo "- diskfab commit $commit, $("$DF_REAL" --version 2>/dev/null | sed -n 1p)$([ -n "${DISKFAB:-}" ] && echo " (DISKFAB=$DISKFAB)")"
  if [ "$QUICK" = 1 ]; then
    echo "- **quick mode**: small sizes and one run per measurement, to check that the scripts work; the numbers"
    echo "  are not the project's benchmark (that is \`bash bench/run.sh\`)"
  fi
  echo
  echo "Every figure comes from this run. Each timed command had to exit with the expected status and pass"
  echo "its output check (\`qemu-img compare\`/\`check\`, \`cmp\`, counts), or the run stops and writes nothing."
  echo "Ratios q/d are reference (qemu-img, or another way of doing the same) time / diskfab time:"
  echo "> 1 means diskfab is faster."
  for s in "${SECTIONS[@]}"; do
    echo
    cat "$W/$s.md"
  done
} >"$W/doc.md"
mkdir -p "$(dirname "$DOC")"
mv "$W/doc.md" "$DOC"
echo "wrote $DOC" >&2
