#!/usr/bin/env bash
# Live outputs: glass-to-glass latency of the live HLS playlist (hls.js in
# Chromium) and of an RTMP push (nginx-rtmp, read back by ffmpeg), the CPU
# each output kind adds to a 720p30 frames recording, and the bytes of HLS
# per recording-minute beside the MP4; beside a peer that does what one
# would with ffmpeg alone: one encode per output (libx264 to HLS, again to
# RTMP) of the same frames. Each frame carries its index as a barcode; the
# reader's clock when it shows, less the clock when it was sent, is its
# latency (one machine, one clock).
#   bench/outputs.sh [--seconds 60]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --release --locked --quiet
# The bench's frames client speaks WebSocket with Debian's python3-websockets.
if ! /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
  apt-get install -y -qq python3-websockets >/dev/null
fi
exec /usr/bin/python3 bench/outputs_bench.py --tapedeck target/release/tapedeck "$@"
