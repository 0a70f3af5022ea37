#!/usr/bin/env bash
# Node loss: what shipping live media to the bucket costs, and how long a
# dead node's recordings take to finish elsewhere. Three nodes on this
# machine behind HAProxy (scripts/cluster.sh).
#   1. The cost: one node, N cameras (720p JPEG at 5 fps), once with
#      cluster.ship_live off (the peer) and once on: the node's CPU, and
#      bytes shipped per recording-second.
#   2. The loss: three nodes; the first holds cameras, a realtime web
#      recording, a call with two WHIP publishers recorded, and a tus
#      upload; kill -9 of it; bytes shipped per recording-second by kind,
#      and the time from the kill to every recording completed elsewhere.
# Options: --cameras 20 --seconds 30
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --release --locked --quiet -p tapedeck-server --bin tapedeck
cargo build --release --locked --quiet -p tapedeck-testkit --bin tapedeck-loadgen
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import websockets' 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet websockets
fi
exec bench/.venv/bin/python bench/node_loss.py --bin "${CARGO_TARGET_DIR:-target}/release" "$@"
