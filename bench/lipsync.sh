#!/usr/bin/env bash
# Lip sync over a long call: the end-to-end test (crates/tapedeck-server/
# tests/rooms_sync.rs) with a publisher sending SECONDS (default 600): a
# page that flashes and beeps once a second over WHIP from Debian's
# Chromium, recorded as a grid; then the same with its sound starting 2 s
# late and a 2 s pause. Prints each recording's flash-to-beep offsets (ms;
# positive: sound later) at the start, the median, the spread and the last,
# in the track files, in the grid, and in the browser's own MediaRecorder
# recording of the same tracks for comparison.
#   bench/lipsync.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
LIPSYNC_SECONDS="$seconds" cargo test -p tapedeck-server --test rooms_sync -- --nocapture 2>&1 \
  | grep -E "^(sender's own recording|tracks|grid): [0-9]+ pairs|^test result"
