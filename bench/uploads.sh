#!/usr/bin/env bash
# Fix-up of a browser's MediaRecorder WebM (what every upload from the
# recorder page is): a live WebM with no duration and no cues, made here by
# ffmpeg (a 10 s 720p30 VP8 ~2.5 Mbit/s + Opus clip, looped by stream copy
# with -live 1), MINUTES long. Each tool gives it a duration and cues
# without re-encoding:
#   tapedeck fixup IN OUT           (what upload processing runs)
#   ffmpeg -i IN -c copy OUT         (the usual remux)
#   mkvmerge -o OUT IN               (mkvtoolnix, Debian's)
# Prints wall seconds, peak RSS and the output's duration and frame count
# (ffprobe), at two sizes (a quarter of MINUTES and MINUTES) to show memory
# does not grow with the file, and the ratio to ffmpeg's time (+sync). tapedeck
# syncs its output to disk before it returns (processing relies on it);
# the others do not, so ffmpeg is also timed followed by `sync FILE`.
#   bench/uploads.sh [--minutes 60]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=60
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v mkvmerge >/dev/null || need+=(mkvtoolnix)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --locked --quiet -p tapedeck-server --bin tapedeck
bin=target/release/tapedeck
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ffmpeg -v error -y -f lavfi -i testsrc2=s=1280x720:r=30 -f lavfi -i "sine=f=440:r=48000" -t 10 \
  -c:v libvpx -b:v 2500k -minrate 2500k -maxrate 2500k -g 60 -deadline realtime -cpu-used 8 \
  -c:a libopus -b:a 64k "$work/clip.webm"

# "wall_s rss_mb" of a command.
measure() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  awk '{printf "%s %.1f", $1, $2 / 1024}' "$work/time"; }
# "duration frames cues" of a file.
check() {
  local d f c
  d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$1")
  f=$(ffprobe -v error -select_streams v -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1")
  c=$(python3 -c 'import sys; b=open(sys.argv[1],"rb").read(); print("yes" if b.find(bytes([0x1C,0x53,0xBB,0x6B])) >= 0 else "no")' "$1")
  echo "$d $f $c"
}

echo "| input | tool | wall s | vs ffmpeg+sync | peak RSS MB | duration s | video frames | cues |"
echo "|---|---|---|---|---|---|---|---|"
summary=""
for m in $((minutes / 4)) "$minutes"; do
  [ "$m" -ge 1 ] || continue
  in="$work/in-$m.webm"
  ffmpeg -v error -y -stream_loop -1 -i "$work/clip.webm" -t $((m * 60)) -c copy -live 1 -f webm "$in"
  size=$(( $(stat -c %s "$in") / 1048576 ))
  sync
  read -r fw fr <<<"$(measure ffmpeg -v error -y -i "$in" -map 0 -c copy "$work/ffmpeg.webm")"
  rm -f "$work/ffmpeg.webm"; sync
  read -r sw sr <<<"$(measure sh -c 'ffmpeg -v error -y -i "$1" -map 0 -c copy "$2" && sync "$2"' _ "$in" "$work/ffmpeg+sync.webm")"
  sync
  read -r tw tr <<<"$(measure "$bin" fixup "$in" "$work/tapedeck.webm")"
  sync
  read -r mw mr <<<"$(measure mkvmerge -q -o "$work/mkvmerge.webm" "$in")"
  for t in tapedeck ffmpeg+sync mkvmerge; do
    case $t in tapedeck) w=$tw r=$tr ;; ffmpeg+sync) w=$sw r=$sr ;; mkvmerge) w=$mw r=$mr ;; esac
    read -r d f c <<<"$(check "$work/$t.webm")"
    ratio=$(python3 -c "print(f'{$w / max($sw, 0.001):.2f}x')")
    echo "| ${m} min, ${size} MB | $t | $w | $ratio | $r | $d | $f | $c |"
    rm -f "$work/$t.webm"
  done
  echo "| ${m} min, ${size} MB | ffmpeg (no sync) | $fw | $(python3 -c "print(f'{$fw / max($sw, 0.001):.2f}x')") | $fr | | | |"
  summary="uploads: ${m} min (${size} MB) fixed up by tapedeck in ${tw} s with fsync (ffmpeg ${fw} s without, ${sw} s with; mkvmerge ${mw} s), peak RSS ${tr} MB"
  rm -f "$in"
done
echo "$summary"
