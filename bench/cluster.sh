#!/usr/bin/env bash
# A cluster of 1, 2 and 3 nodes on this machine behind HAProxy
# (scripts/cluster.sh): web jobs per minute, control-API requests per second
# and p99, the shared queue's claim latency, PostgreSQL transactions per job,
# and what forwarding a camera's socket through another node costs. The
# nodes share this machine's cores (each gets 1/N of the budget), and the
# one-node run is the peer the others are compared with.
# Options: --nodes 1,2,3 --jobs 18 --claims 20 --seconds 5
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --release --locked --quiet
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import websockets' 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet websockets
fi
exec bench/.venv/bin/python bench/cluster_bench.py --tapedeck "${CARGO_TARGET_DIR:-target}/release/tapedeck" "$@"
