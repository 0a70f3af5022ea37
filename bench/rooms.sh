#!/usr/bin/env bash
# Rooms under load: N WebRTC publishers (tapedeck-loadgen: str0m clients in
# one process, each sending a pre-encoded 720p30 VP8 clip at ~1.5 Mbit/s and
# 20 ms Opus frames, looped and paced) into rooms of 10, every room recorded
# (layout tracks), for SECONDS. Prints, for tapedeck's process only: CPU %
# of one core per stream, RSS per stream, frames lost (sent by the
# generator, missing from the track files), video gaps over 100 ms in the
# track files, and decode errors in a sample of them.
#   bench/rooms.sh [--publishers "50 100 200"] [--seconds 60] [--peer werift]
# A stream is one publisher (one VP8 and one Opus track).
#
# With --calls: calls instead (bench/calls_bench.py): rooms of 6
# participants joining as the call page does (tapedeck-loadgen --call), each
# publishing and receiving the other 5, run once unrecorded and once
# recorded; --publishers is then the number of participants (a multiple of
# 6). The clip flashes white and beeps at the same instant every second, for
# the A/V offset of sampled recordings.
#   bench/rooms.sh --calls [--publishers "30 60"] [--seconds 60] [--peer werift]
set -euo pipefail
cd "$(dirname "$0")/.."
publishers="50 100 200"
seconds=60
peer=""
calls=""
while [ $# -gt 0 ]; do
  case "$1" in
    --publishers) publishers="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --peer) peer="$2"; shift 2 ;;
    --calls) calls=1; [ "$publishers" = "50 100 200" ] && publishers="30 60"; shift ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
cargo build --release --locked --quiet -p tapedeck-server --bin tapedeck
cargo build --release --locked --quiet -p tapedeck-testkit --bin tapedeck-loadgen
bin=target/release
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

# The clips, made here: 10 s of testsrc2 at 720p30, VP8 ~1.5 Mbit/s with a
# keyframe every 2 s; a 440 Hz tone in 20 ms Opus frames.
ffmpeg -v error -y -f lavfi -i testsrc2=s=1280x720:r=30 -t 10 -c:v libvpx -b:v 1500k \
  -minrate 1500k -maxrate 1500k -g 60 -deadline realtime -cpu-used 8 -auto-alt-ref 0 "$work/clip.ivf"
ffmpeg -v error -y -f lavfi -i "sine=f=440:r=48000" -t 10 -ac 2 -c:a libopus -b:a 64k \
  -frame_duration 20 "$work/clip.opus"

# The call clip: testsrc2 turned white for 3 pictures at each whole second,
# a 1 kHz beep for 100 ms at the same instants; exactly 10 s of each (300
# pictures, 500 Opus frames) so that the loops stay in step.
ffmpeg -v error -y -f lavfi -i "testsrc2=s=1280x720:r=30,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(n,30),3)'" \
  -frames:v 300 -c:v libvpx -b:v 1500k -minrate 1500k -maxrate 1500k -g 60 -deadline realtime -cpu-used 8 \
  -auto-alt-ref 0 "$work/av.ivf"
ffmpeg -v error -y -f lavfi -i "aevalsrc='if(lt(mod(n,48000),4800),0.5*sin(2*PI*1000*t),0)':s=48000:c=stereo" \
  -t 10.5 -c:a libopus -b:a 64k -frame_duration 20 -frames:a 500 "$work/av.opus"

if [ "$peer" = werift ]; then
  (cd bench/peer && npm ci --silent --no-audit --no-fund)
fi

python3 bench/rooms_bench.py --bin "$bin" --work "$work" --publishers $publishers \
  --seconds "$seconds" ${peer:+--peer "$peer"} ${calls:+--calls}
