"""Drives `bench/rooms.sh --calls`: for each N, rooms of 6 participants
(tapedeck-loadgen --call: str0m clients joining as the call page does),
each publishing a 720p30 VP8 clip and Opus and receiving the other 5.
Each N runs twice, once without recording and once with every room
recorded (layout tracks): the first gives the CPU per forwarded stream,
the difference the CPU per recorded track. What the participants received
(frames against what the others sent, packets missing from sequences) and
the A/V offset of a sample of the recordings (the clip flashes and beeps
at the same instant every second) are printed beside werift (bench/peer/
werift_call.mjs: the same signalling, werift forwarding RTP, its
MediaRecorder recording)."""

import json
import os
import statistics
import subprocess
import time
import urllib.request

from rooms_bench import api, cpu_ticks, rss_kb, free_port, packet_times, decode_errors, TICK

ROOM = 6


def serve(args, n, tag):
    data = os.path.join(args.work, f"data-{tag}")
    out = subprocess.run([f"{args.bin}/tapedeck", "keys", "create", "--user", "bench", "--data-dir", data],
                         capture_output=True, text=True, check=True).stdout
    key = next(w for w in out.split() if w.startswith("tdk_"))
    port = free_port()
    env = dict(os.environ, TAPEDECK_RTC__UDP_PORT="0", TAPEDECK_RTC__MAX_PEERS=str(n + 50),
               TAPEDECK_LIMITS__MAX_CONCURRENT=str(n), TAPEDECK_LIMITS__MAX_CONCURRENT_PER_USER=str(n),
               TAPEDECK_LOG="warn")
    proc = subprocess.Popen([f"{args.bin}/tapedeck", "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(args.work, f"serve-{tag}.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return proc, base, key, data


def load(args, pid, groups):
    """One generator per room; samples `pid` while all are in the call."""
    cmd = [f"{args.bin}/tapedeck-loadgen", "--video", f"{args.work}/av.ivf", "--audio", f"{args.work}/av.opus",
           "--seconds", str(args.seconds), "--stagger-ms", "50"]
    procs = [subprocess.Popen(cmd + ["--call", url] + sum((["--token", t] for t in toks), []),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for url, toks in groups]
    ramp = 5
    time.sleep(ramp)
    t1, c1 = time.time(), cpu_ticks(pid)
    time.sleep(max(5, args.seconds - ramp - 3))
    t2, c2 = time.time(), cpu_ticks(pid)
    rss = rss_kb(pid)
    tot = {"connected": 0, "video_frames": 0, "audio_frames": 0, "failed": [],
           "received": {"video_frames": 0, "audio_frames": 0, "packets": 0, "packets_lost": 0}}
    for p in procs:
        out, err = p.communicate()
        try:
            j = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            tot["failed"].append(err.strip()[-300:])
            continue
        for k in ("connected", "video_frames", "audio_frames"):
            tot[k] += j[k]
        for k in tot["received"]:
            tot["received"][k] += j["received"][k]
        tot["failed"] += j["failed"]
    return 100.0 * (c2 - c1) / TICK / (t2 - t1), rss, tot


def summary(peer, n, recorded, cpu, rss, tot):
    r = tot["received"]
    # Each participant should get every frame each of the other 5 sent.
    want_v = tot["video_frames"] * (ROOM - 1)
    want_a = tot["audio_frames"] * (ROOM - 1)
    return {
        "peer": peer, "participants": n, "recorded": recorded, "cpu_pct": cpu, "rss_mb": rss / 1024,
        "connected": tot["connected"], "failed": tot["failed"][:3],
        "forwarded_streams": n * (ROOM - 1) * 2,
        "video_received_pct": 100.0 * r["video_frames"] / max(1, want_v),
        "audio_received_pct": 100.0 * r["audio_frames"] / max(1, want_a),
        "packets_lost_pct": 100.0 * r["packets_lost"] / max(1, r["packets"] + r["packets_lost"]),
    }


def run_tapedeck(args, n, recorded):
    proc, base, key, data = serve(args, n, f"calls-{n}-{int(recorded)}")
    try:
        groups, recs = [], []
        for i in range(n // ROOM):
            room = api(base, key, "POST", "/v1/rooms", {"name": f"call {i}", "max_participants": ROOM})
            toks = [api(base, key, "POST", f"/v1/rooms/{room['id']}/invites", {"name": f"p{i}-{j}"})["token"]
                    for j in range(ROOM)]
            if recorded:
                recs.append(api(base, key, "POST", "/v1/recordings",
                                {"source": {"kind": "room", "room": room["id"]}})["id"])
            groups.append((base.replace("http://", "ws://") + f"/v1/rooms/{room['id']}/call", toks))
        cpu, rss, tot = load(args, proc.pid, groups)
        out = summary("tapedeck", n, recorded, cpu, rss, tot)
        if recorded:
            for rid in recs:
                api(base, key, "POST", f"/v1/recordings/{rid}/stop", {})
            files = []
            for rid in recs[:: max(1, len(recs) // 3)][:3]:
                while (r := api(base, key, "GET", f"/v1/recordings/{rid}"))["status"] not in (
                        "completed", "failed", "cancelled"):
                    time.sleep(0.5)
                by = {}
                for t in r.get("tracks", []):
                    path = os.path.join(data, "media", "recordings", rid, "tracks", f"{t['id']}.webm")
                    by.setdefault(t["participant"], {})[t["kind"]] = (path, t["start_s"])
                files += [(p["video"], p["audio"]) for p in by.values() if "video" in p and "audio" in p]
            out.update(av_offsets(files))
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def flashes(path, start):
    """Times (s) of pictures that turn bright, plus `start`."""
    times = packet_times(path)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-vf", "scale=16:9,format=gray", "-fps_mode",
                          "passthrough", "-f", "rawvideo", "-"], capture_output=True).stdout
    means = [sum(raw[i:i + 144]) / 144 for i in range(0, len(raw) - 143, 144)]
    out, prev = [], 0.0
    for t, m in zip(times, means):
        if m > 200 and prev <= 200:
            out.append(start + t)
        prev = m
    return out


def beeps(path, start):
    """Times (s) where the sound starts after at least 0.3 s of silence."""
    rate = 8000
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"],
                         capture_output=True).stdout
    first = packet_times(path, "a:0")
    t0 = first[0] if first else 0.0
    out, quiet = [], rate
    for i in range(0, len(raw) - 1, 2):
        v = abs(int.from_bytes(raw[i:i + 2], "little", signed=True))
        if v > 3000:
            if quiet >= 0.3 * rate:
                out.append(start + t0 + (i // 2) / rate)
            quiet = 0
        else:
            quiet += 1
    return out


def av_offsets(pairs):
    """Beep minus flash (ms) for every flash with a beep within 0.5 s."""
    offs, errors = [], 0
    for (vpath, vstart), (apath, astart) in pairs:
        errors += bool(decode_errors(vpath))
        b = beeps(apath, astart)
        for f in flashes(vpath, vstart):
            near = min(b, key=lambda x: abs(x - f), default=None)
            if near is not None and abs(near - f) < 0.5:
                offs.append(1000 * (near - f))
    if not offs:
        return {"av_pairs": 0, "av_participants": len(pairs), "decode_errors": errors}
    return {"av_pairs": len(offs), "av_participants": len(pairs), "decode_errors": errors,
            "av_median_ms": statistics.median(offs), "av_min_ms": min(offs), "av_max_ms": max(offs)}


def run_werift(args, n, recorded):
    out_dir = os.path.join(args.work, f"werift-calls-{n}-{int(recorded)}")
    os.makedirs(out_dir)
    port = free_port()
    peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer")
    node = subprocess.Popen(["node", "werift_call.mjs", str(port), out_dir if recorded else ""], cwd=peer,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(args.work, f"werift-calls-{n}.log"), "w"))
    try:
        time.sleep(1.5)
        groups = [(f"ws://127.0.0.1:{port}/call/{i}", [f"x{j}" for j in range(ROOM)]) for i in range(n // ROOM)]
        cpu, rss, tot = load(args, node.pid, groups)
        out = summary("werift", n, recorded, cpu, rss, tot)
        if recorded:
            time.sleep(3)
            files = sorted(os.listdir(out_dir))
            sample = files[:: max(1, len(files) // 6)][:6]
            out.update(av_offsets([((os.path.join(out_dir, f), 0.0), (os.path.join(out_dir, f), 0.0))
                                   for f in sample]))
        return out
    finally:
        node.terminate()
        node.wait(timeout=30)


def table(rows):
    print("| server | participants | recorded | connected | CPU % | CPU % per forwarded stream | RSS MB | "
          "video received % | audio received % | packets lost % | A/V offset ms (median, min..max, pairs) | "
          "decode errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        av = (f"{r['av_median_ms']:+.0f}, {r['av_min_ms']:+.0f}..{r['av_max_ms']:+.0f}, {r['av_pairs']}"
              if r.get("av_pairs") else ("none found" if r["recorded"] else "-"))
        print(f"| {r['peer']} | {r['participants']} | {'yes' if r['recorded'] else 'no'} | {r['connected']} | "
              f"{r['cpu_pct']:.1f} | {r['cpu_pct'] / r['forwarded_streams']:.3f} | {r['rss_mb']:.0f} | "
              f"{r['video_received_pct']:.1f} | {r['audio_received_pct']:.1f} | {r['packets_lost_pct']:.2f} | {av} | "
              f"{r.get('decode_errors', '-')} |")
    for peer in ("tapedeck", "werift"):
        for n in sorted({r["participants"] for r in rows}):
            plain = [r for r in rows if r["peer"] == peer and r["participants"] == n and not r["recorded"]]
            rec = [r for r in rows if r["peer"] == peer and r["participants"] == n and r["recorded"]]
            if plain and rec:
                per = (rec[0]["cpu_pct"] - plain[0]["cpu_pct"]) / (n * 2)
                print(f"{peer} at {n} participants: {plain[0]['cpu_pct'] / plain[0]['forwarded_streams']:.3f} % of a "
                      f"core per forwarded stream, {per:.3f} % per recorded track")


def main(args):
    import sys
    rows = []
    for n in args.publishers:
        n = max(ROOM, n - n % ROOM)
        for recorded in (False, True):
            r = run_tapedeck(args, n, recorded)
            print(json.dumps(r), file=sys.stderr)
            rows.append(r)
            if args.peer == "werift":
                w = run_werift(args, n, recorded)
                print(json.dumps(w), file=sys.stderr)
                rows.append(w)
    table(rows)
