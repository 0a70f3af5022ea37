#!/usr/bin/env bash
# Many cameras at once: N concurrent frames recordings (720p JPEG at 5 fps
# in, 720p30 out) for S seconds in one tapedeck server, and N OpenCV
# VideoWriter processes doing the same work. Prints CPU % of a core and RSS
# per stream, and how many outputs are complete.
# Options: --streams 16,50,100 (default) --seconds 60 --peer opencv|none
#   --budget CORES (tapedeck's limits.cpu_budget_cores; default the machine's cores)
#   --all-busy (every encoder at the busy preset, encoder.busy_above = 0)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --quiet
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import cv2, websockets' 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet opencv-python-headless numpy websockets
fi
exec bench/.venv/bin/python bench/frames_many.py --tapedeck target/release/tapedeck "$@"
