#!/usr/bin/env bash
# A call's live grid: the CPU it adds to a grid recording (decoders, the
# live encoder, the composing thread in the server), for 1 and 3 people
# publishing over WHIP, beside the grid made after stop from the same call.
#   bench/call_grid.sh [--seconds 50] [--people 1,3]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo build --release --locked --quiet
exec /usr/bin/python3 bench/call_grid_bench.py --tapedeck target/release/tapedeck "$@"
