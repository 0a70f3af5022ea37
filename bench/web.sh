#!/usr/bin/env bash
# The web benchmark: tapedeck (deterministic mode) vs Playwright's recordVideo
# on Debian's Chromium, on bench/pages/clock.html at 720p30 and 1080p60.
# Prints delivered fps, holds, jerk, SSIM per Mbit/s and CPU seconds for both,
# and the ratios. Options: --seconds N (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --release --locked --quiet
cargo build --release --locked --quiet -p tapedeck-testkit --bin tapedeck-clock-stats
exec python3 bench/web_bench.py --tapedeck target/release/tapedeck "$@"
