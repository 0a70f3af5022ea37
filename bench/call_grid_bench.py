"""Drives bench/call_grid.sh: what a call's live grid costs. N people
publish into a room over WHIP (Chromium, a 640x360 barcode canvas at
30 fps and its fake microphone, tests/e2e/whip.mjs) while a grid
recording at 720p30 records them, once without live outputs and once
with an HLS output (the live grid composed while the call runs). Prints,
per run, the CPU of the server process and of its ffmpeg children by role
(the live grid's decoders and its encoder), against the peer: the grid
made after stop from the same call (what tapedeck did before: the CPU
seconds of its ffmpeg per second of call)."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from rooms_bench import api, serve  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def children():
    """{pid: (ppid, cpu s, args)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            args = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        out[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, args)
    return out


def role(args):
    if not args or b"ffmpeg" not in args[0]:
        return None
    if b"rawvideo" in args:
        return "picture decoders"
    if b"s16le" in args:
        return "sound decoders"
    if b"hls" in args and b"matroska" in args:
        return "live grid encoder"
    if b"-filter_complex" in args:
        return "grid after stop"
    return "other ffmpeg"


def cpu_by_role(root):
    """CPU seconds of root itself and of its children, by role (finished
    children are not counted: take the difference over a span in which
    the ones measured run)."""
    procs = children()
    out = {"server": procs.get(root, (0, 0, []))[1]}
    for pid, (ppid, cpu, args) in procs.items():
        if ppid == root:
            r = role(args)
            if r:
                out[r] = out.get(r, 0) + cpu
    return out


def run(args, n, live):
    tag = f"{n}-{'live' if live else 'none'}"
    proc, base, key = serve(args.tapedeck, args.work, tag, TAPEDECK_LOG="warn", TAPEDECK_RTC__UDP_PORT="0")
    room = api(base, key, "POST", "/v1/rooms", {"name": "bench"})["id"]
    body = {"source": {"kind": "room", "room": room, "layout": "grid"}, "width": 1280, "height": 720, "fps": 30}
    if live:
        body["outputs"] = [{"kind": "hls", "segment_s": 2}]
    rid = api(base, key, "POST", "/v1/recordings", body)["id"]
    pubs = []
    for i in range(n):
        token = api(base, key, "POST", f"/v1/rooms/{room}/invites", {"name": f"p{i}"})["token"]
        pubs.append(subprocess.Popen(["node", "whip.mjs", base, room, token, str(args.seconds)],
                                     cwd=os.path.join(ROOT, "tests", "e2e"),
                                     env=dict(os.environ, WHIP_BARCODE="1"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(12)
    c1, t1 = cpu_by_role(proc.pid), time.time()
    time.sleep(args.seconds - 20)
    c2, dt = cpu_by_role(proc.pid), time.time() - t1
    result = {"tag": tag, "people": n, "live": live,
              "cpu_pct": {k: round(100 * (v - c1.get(k, 0)) / dt, 2) for k, v in c2.items()}}
    for p in pubs:
        p.wait()
    api(base, key, "POST", f"/v1/recordings/{rid}/stop")
    # The grid after stop: its ffmpeg's CPU while it runs.
    grid_cpu, last = 0.0, {}
    for _ in range(1200):
        for pid, (ppid, cpu, a) in children().items():
            if ppid == proc.pid and role(a) == "grid after stop":
                last[pid] = cpu
        r = api(base, key, "GET", f"/v1/recordings/{rid}")
        if r["status"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    grid_cpu = sum(last.values())
    result["status"] = r["status"]
    result["duration_s"] = r.get("duration_s")
    result["grid_after_stop_cpu_s"] = round(grid_cpu, 2)
    result["processing_s"] = (r.get("stats") or {}).get("processing_s")
    proc.terminate()
    proc.wait()
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--seconds", type=int, default=50)
    ap.add_argument("--people", default="1,3")
    args = ap.parse_args()
    args.work = tempfile.mkdtemp(prefix="tapedeck-call-grid-")
    rows = []
    for n in [int(x) for x in args.people.split(",")]:
        for live in (False, True):
            rows.append(run(args, n, live))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'people':>6} {'live grid':>10} {'server %':>9} {'decoders %':>11} {'encoder %':>10} "
          f"{'live grid total %':>18} {'after stop CPU s per call s':>28}  live/after")
    for n in sorted({r["people"] for r in rows}):
        off = next(r for r in rows if r["people"] == n and not r["live"])
        on = next(r for r in rows if r["people"] == n and r["live"])
        c = on["cpu_pct"]
        dec = c.get("picture decoders", 0) + c.get("sound decoders", 0)
        enc = c.get("live grid encoder", 0)
        server_added = c.get("server", 0) - off["cpu_pct"].get("server", 0)
        total = dec + enc + server_added
        after = 100 * off["grid_after_stop_cpu_s"] / max(off["duration_s"] or 1, 1)
        print(f"{n:>6} {'on':>10} {c.get('server', 0):>9.1f} {dec:>11.1f} {enc:>10.1f} {total:>18.1f} "
              f"{after / 100:>28.2f}  x{total / after:.2f}")
        print(f"{n:>6} {'off':>10} {off['cpu_pct'].get('server', 0):>9.1f}")


if __name__ == "__main__":
    main()
