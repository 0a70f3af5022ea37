#!/usr/bin/env bash
# The frames benchmark: tapedeck vs OpenCV VideoWriter (mp4v, 30 fps) on the
# same 600 720p JPEG frames, arriving at 30 fps and at 5 fps.
# Prints CPU seconds per second of video, bytes and SSIM for both, and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --quiet
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet opencv-python-headless numpy
fi
exec bench/.venv/bin/python bench/frames_bench.py --tapedeck target/release/tapedeck "$@"
