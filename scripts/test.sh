#!/usr/bin/env bash
# Runs every test: installs what is missing (ffmpeg, Chromium, PostgreSQL,
# Node.js + playwright-core, s3s-fs), checks format and lints, then runs the
# unit, integration and browser tests and a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$log"
scripts/fuzz.sh
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
rm -f "$log"
