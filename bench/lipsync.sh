#!/usr/bin/env bash
# Lip sync over a long call: the end-to-end test (crates/tapedeck-server/
# tests/rooms_sync.rs) with a publisher sending SECONDS (default 600): a
# page that flashes and beeps once a second over WHIP from Debian's
# Chromium, recorded as a grid (`--all`: then the same with its sound
# starting 2 s late and a 2 s pause, as CI runs for 12 s). Prints the
# flash-to-beep offsets (ms; positive: sound later): min, median, max, the
# first and the last, in the track files, in the grid, and in the
# browser's own MediaRecorder recording of the same tracks for comparison.
# The whole output is in target/lipsync.log.
#   bench/lipsync.sh [SECONDS] [--all]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
only=plain
[ "${2:-}" = "--all" ] && only=all
mkdir -p target
LIPSYNC_SECONDS="$seconds" LIPSYNC_ONLY="$only" \
  cargo test -p tapedeck-server --test rooms_sync -- --nocapture > target/lipsync.log 2>&1 || true
grep -E " pairs, |^test result|panicked" target/lipsync.log
