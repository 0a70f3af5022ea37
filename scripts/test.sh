#!/usr/bin/env bash
# Runs every test: installs what is missing (ffmpeg, Chromium, PostgreSQL,
# Node.js + playwright-core, s3s-fs), checks format and lints, then runs the
# unit, integration, browser and fuzz-target smoke tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
scripts/fuzz.sh
