#!/usr/bin/env bash
# Everyone at once, with hostile clients (issue 22): N users each looping
# through frames, upload, room and web recordings with an event socket
# open, while one hostile client per way of harming others runs beside
# them (WHIP sessions that never connect, web recordings of the host's own
# addresses, junk and empty uploads, pictures of 16000x16000, half-sent
# requests, event sockets past the limit and sockets that never read, bad
# SDP, oversized bodies, room spam). Every user recording is checked
# exactly; tapedeck's RSS, open files, work/ and /healthz are sampled every
# 10 s. Prints a report (bench/README.md keeps the figures).
#   bench/hostile.sh [--users 3] [--seconds 600]
set -euo pipefail
cd "$(dirname "$0")/.."
users=3
seconds=600
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
scripts/setup.sh
cargo build --release --locked --quiet -p tapedeck-server --bin tapedeck
cargo build --release --locked --quiet -p tapedeck-testkit --bin tapedeck-loadgen
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import websockets' 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet websockets
fi
bin=target/release
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

# A room publisher's clips (VP8 320x240 at 30 fps, a keyframe every 2 s;
# Opus in 20 ms frames), the camera's pictures, the upload, the liar.
ffmpeg -v error -y -f lavfi -i testsrc2=s=320x240:r=30 -t 10 -c:v libvpx -b:v 300k -g 60 \
  -deadline realtime -cpu-used 8 -auto-alt-ref 0 "$work/clip.ivf"
ffmpeg -v error -y -f lavfi -i "sine=f=440:r=48000" -t 10 -ac 2 -c:a libopus -b:a 64k \
  -frame_duration 20 "$work/clip.opus"
mkdir -p "$work/jpegs"
ffmpeg -v error -y -f lavfi -i testsrc2=s=320x240:r=10 -t 2 -q:v 5 "$work/jpegs/%03d.jpg"
ffmpeg -v error -y -f lavfi -i testsrc2=s=320x240:r=30 -f lavfi -i "sine=f=330" -t 5 \
  -c:v libvpx -b:v 300k -c:a libopus "$work/upload.webm"
ffmpeg -v error -y -f lavfi -i color=c=black:s=256x256:r=2 -frames:v 2 -g 1 -c:v libvpx -b:v 50k \
  "$work/small.webm"
python3 - "$work/small.webm" "$work/huge.webm" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
# VP8 keyframe headers and the Matroska PixelWidth/PixelHeight: 256 -> 16000.
b = b.replace(bytes([0x9d, 1, 0x2a, 0, 1, 0, 1]), bytes([0x9d, 1, 0x2a]) + (16000).to_bytes(2, "little") * 2)
for tag in (0xb0, 0xba):
    b = b.replace(bytes([tag, 0x82, 1, 0]), bytes([tag, 0x82]) + (16000).to_bytes(2, "big"))
open(sys.argv[2], "wb").write(b)
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
page_port=$(free_port)
port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory bench/pages "$page_port" >/dev/null 2>&1 &
data="$work/data"
: > "$work/keys"
for u in $(seq 1 "$users") mallory; do
  name=$([ "$u" = mallory ] && echo mallory || echo "user$u")
  key=$("$bin/tapedeck" keys create --user "$name" --data-dir "$data" | tail -1)
  echo "$name $key" >> "$work/keys"
done
cat > "$work/tapedeck.toml" <<TOML
[web]
allowed_hosts = ["127.0.0.1:$page_port"]
[rtc]
udp_port = 0
TOML
TAPEDECK_LOG=warn "$bin/tapedeck" serve --config "$work/tapedeck.toml" --data-dir "$data" \
  --listen "127.0.0.1:$port" 2> "$work/serve.log" &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
status=0
bench/.venv/bin/python bench/hostile_bench.py --data "$data" --keys "$work/keys" --port "$port" \
  --pid "$server" --loadgen "$bin/tapedeck-loadgen" --ivf "$work/clip.ivf" --opus "$work/clip.opus" \
  --page "http://127.0.0.1:$page_port/clock.html" --upload "$work/upload.webm" --huge "$work/huge.webm" \
  --jpegs "$work/jpegs" --seconds "$seconds" || status=$?
kill "$server"
wait "$server" || true
echo "# server log: $(grep -c . "$work/serve.log") lines, $(grep -ci panic "$work/serve.log" || true) panics"
exit "$status"
