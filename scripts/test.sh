#!/usr/bin/env bash
# THE test command: installs dependencies, builds fixtures with reference tools, runs every test
# (unit, oracle, hostile-input) and a bounded fuzz smoke run. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/fixtures.sh >/dev/null
export DISKFAB_FIXTURES=${DISKFAB_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/diskfab-fixtures}
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 2
else
  cargo test --workspace --no-fail-fast -- --test-threads 2
fi
cargo test --workspace --doc -q
cargo fmt --all --check
cargo clippy --workspace --all-targets -q -- -D warnings
if [ "${DISKFAB_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh "${DISKFAB_FUZZ_SECONDS:-10}"
fi
