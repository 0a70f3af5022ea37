#!/usr/bin/env bash
# Deterministic web recording speed: the real-time factor per preset on the
# rich clock page, tapedeck (PNG and JPEG capture) vs Playwright frame by
# frame. Options: --seconds N (default 3), --cases 1080p30,1080p60,2160p30,
# --recorders tapedeck-png,tapedeck-jpeg,playwright, --batch N (also N
# recordings at once against one alone: a queue's throughput), --browsers
# 1,2,3 (also each case rendered by that many browsers at once, in ranges).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --release --locked --quiet
cargo build --release --locked --quiet -p tapedeck-testkit --bin tapedeck-clock-stats
exec python3 bench/web_speed.py --tapedeck target/release/tapedeck "$@"
