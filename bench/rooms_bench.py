"""Drives bench/rooms.sh: for each N, a fresh tapedeck server, N/10 rooms of
10 publishers each, every room recorded; tapedeck-loadgen publishes for the
given seconds; tapedeck's CPU and RSS are read from /proc while all are
sending; then the recordings are stopped and their track files checked with
ffprobe (frames, gaps) and, for a sample, a full ffmpeg decode."""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

ROOM_SIZE = 10
TICK = os.sysconf("SC_CLK_TCK")


def api(base, key, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def serve(binary, work, tag, **env):
    """A tapedeck server on a free loopback port with its own data folder
    (`work/data-TAG`, log `work/TAG.log`) and an API key for user `bench`,
    `env` added to its environment once it answers: (process, base URL, key)."""
    data = os.path.join(work, f"data-{tag}")
    out = subprocess.run([binary, "keys", "create", "--user", "bench", "--data-dir", data],
                         capture_output=True, text=True, check=True).stdout
    key = next(w for w in out.split() if w.startswith("tdk_"))
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                            env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, f"{tag}.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return proc, base, key


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def packet_times(path, stream="v:0"):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", path],
        capture_output=True, text=True,
    ).stdout
    return [float(x.strip(",")) for x in out.split() if x.strip(",")]


def decode_errors(path):
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True)
    return r.stderr.strip() if r.returncode == 0 else f"exit {r.returncode}: {r.stderr.strip()}"


def run_tapedeck(args, n):
    data = os.path.join(args.work, f"data-{n}")
    key = re.search(
        r"tdk_[A-Za-z0-9_-]+",
        subprocess.run([f"{args.bin}/tapedeck", "keys", "create", "--user", "bench", "--data-dir", data],
                       capture_output=True, text=True, check=True).stdout,
    ).group(0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ,
               TAPEDECK_RTC__UDP_PORT="0",
               TAPEDECK_RTC__MAX_PEERS=str(n + 50),
               TAPEDECK_LIMITS__MAX_CONCURRENT=str(n),
               TAPEDECK_LIMITS__MAX_CONCURRENT_PER_USER=str(n),
               TAPEDECK_LOG="warn")
    server = subprocess.Popen([f"{args.bin}/tapedeck", "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.work, f"serve-{n}.log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        tokens, recordings = [], []
        for r in range((n + ROOM_SIZE - 1) // ROOM_SIZE):
            room = api(base, key, "POST", "/v1/rooms", {"name": f"room {r}", "max_participants": ROOM_SIZE})
            for i in range(min(ROOM_SIZE, n - r * ROOM_SIZE)):
                inv = api(base, key, "POST", f"/v1/rooms/{room['id']}/invites", {"name": f"pub-{r}-{i}"})
                tokens.append((room["id"], inv["token"]))
            rec = api(base, key, "POST", "/v1/recordings", {"source": {"kind": "room", "room": room["id"]}})
            recordings.append(rec["id"])
        by_room = {}
        for room, tok in tokens:
            by_room.setdefault(room, []).append(tok)
        groups = [(f"{base}/v1/rooms/{room}/whip", toks) for room, toks in by_room.items()]
        result = load(args, n, server.pid, groups)
        result["recorder"] = "tapedeck"
        for rid in recordings:
            api(base, key, "POST", f"/v1/recordings/{rid}/stop", {})
        done = []
        deadline = time.time() + 600
        for rid in recordings:
            while True:
                r = api(base, key, "GET", f"/v1/recordings/{rid}")
                if r["status"] in ("completed", "failed", "cancelled") or time.time() > deadline:
                    done.append(r)
                    break
                time.sleep(0.5)
        result.update(check(args, data, done, result))
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def load(args, n, pid, groups):
    """Runs the generator (one process per group of publishers, a group per
    WHIP endpoint); samples the recorder `pid` while every publisher sends."""
    stagger = max(2, min(20, 2000 // n))
    cmd = [f"{args.bin}/tapedeck-loadgen", "--video", f"{args.work}/clip.ivf", "--audio", f"{args.work}/clip.opus",
           "--seconds", str(args.seconds), "--stagger-ms", str(stagger)]
    procs = []
    rss0 = rss_kb(pid)
    for whip, toks in groups:
        c = cmd + ["--whip", whip]
        for t in toks:
            c += ["--token", t]
        procs.append(subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    ramp = stagger * ROOM_SIZE / 1000 + 5
    time.sleep(ramp)
    t1, c1 = time.time(), cpu_ticks(pid)
    window = max(5, args.seconds - ramp - 3)
    time.sleep(window)
    t2, c2 = time.time(), cpu_ticks(pid)
    rss = rss_kb(pid)
    hwm = rss_kb(pid, "VmHWM")
    sent = {"connected": 0, "video_frames": 0, "audio_frames": 0, "failed": []}
    for p in procs:
        out, err = p.communicate()
        try:
            j = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            sent["failed"].append(err.strip()[-300:])
            continue
        for k in ("connected", "video_frames", "audio_frames"):
            sent[k] += j[k]
        sent["failed"] += j["failed"]
    cpu_pct = 100.0 * (c2 - c1) / TICK / (t2 - t1)
    return {
        "n": n,
        "cpu_pct": cpu_pct,
        "cpu_pct_per_stream": cpu_pct / n,
        "rss_mb": rss / 1024,
        "rss_mb_per_stream": (rss - rss0) / 1024 / n,
        "hwm_mb": hwm / 1024,
        "sent": sent,
    }


def check(args, data, done, result):
    statuses = {}
    files = []
    for r in done:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        for t in r.get("tracks", []):
            path = os.path.join(data, "media", "recordings", r["id"], "tracks", f"{t['id']}.webm")
            files.append((t["kind"], path, "0"))
    out = check_files(files, result)
    out["recordings"] = statuses
    return out


def check_files(files, result):
    """Frames, gaps and (sampled) decode errors of (kind, path, stream) files."""
    video_frames, audio_frames, gaps = 0, 0, 0
    for kind, path, stream in files:
        times = packet_times(path, stream)
        if kind == "video":
            video_frames += len(times)
            gaps += sum(1 for a, b in zip(times, times[1:]) if b - a > 0.1)
        else:
            audio_frames += len(times)
    video = [p for k, p, _ in files if k == "video"]
    sample = video[:: max(1, len(video) // 10)][:10]
    errors = sum(1 for p in sample if decode_errors(p))
    sent = result["sent"]
    return {
        "track_files": len(files),
        "video_frames_written": video_frames,
        "audio_frames_written": audio_frames,
        "video_lost_pct": 100.0 * (1 - video_frames / max(1, sent["video_frames"])),
        "audio_lost_pct": 100.0 * (1 - audio_frames / max(1, sent["audio_frames"])),
        "video_gaps_over_100ms": gaps,
        "decode_checked": len(sample),
        "decode_errors": errors,
    }


def run_werift(args, n):
    """The same load recorded by werift's MediaRecorder (bench/peer)."""
    out_dir = os.path.join(args.work, f"werift-{n}")
    os.makedirs(out_dir)
    port = free_port()
    peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer")
    node = subprocess.Popen(["node", "werift_whip.mjs", str(port), out_dir], cwd=peer,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.work, f"werift-{n}.log"), "w"))
    try:
        time.sleep(1.5)
        whip = f"http://127.0.0.1:{port}/whip"
        groups = [(whip, ["x"] * min(ROOM_SIZE, n - i)) for i in range(0, n, ROOM_SIZE)]
        result = load(args, n, node.pid, groups)
        result["recorder"] = "werift"
        time.sleep(3)
        files = []
        for f in sorted(os.listdir(out_dir)):
            path = os.path.join(out_dir, f)
            files.append(("video", path, "v:0"))
            files.append(("audio", path, "a:0"))
        result.update(check_files(files, result))
        result["recordings"] = {"files": len(os.listdir(out_dir))}
        return result
    finally:
        node.terminate()
        node.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--publishers", nargs="+", type=int, required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--peer", default="")
    ap.add_argument("--calls", action="store_true")
    args = ap.parse_args()
    if args.calls:
        import calls_bench
        calls_bench.main(args)
        return
    rows = []
    for n in args.publishers:
        r = run_tapedeck(args, n)
        print(json.dumps(r), file=sys.stderr)
        rows.append(r)
        if args.peer == "werift":
            w = run_werift(args, n)
            print(json.dumps(w), file=sys.stderr)
            rows.append(w)
    print("| recorder | streams | connected | CPU % (all) | CPU % per stream | RSS MB | RSS MB per stream | video lost % | audio lost % | gaps > 100 ms | decode errors (sampled) | recordings |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recorder']} | {r['n']} | {r['sent']['connected']} | {r['cpu_pct']:.1f} | {r['cpu_pct_per_stream']:.3f} | {r['rss_mb']:.0f} | "
              f"{r['rss_mb_per_stream']:.2f} | {r['video_lost_pct']:.2f} | {r['audio_lost_pct']:.2f} | {r['video_gaps_over_100ms']} | "
              f"{r['decode_errors']}/{r['decode_checked']} | {r['recordings']} |")
    last = [r for r in rows if r["recorder"] == "tapedeck"][-1]
    line = (f"rooms: tapedeck at {last['n']} streams, {last['cpu_pct_per_stream']:.3f} % of a core and "
            f"{last['rss_mb_per_stream']:.2f} MB per stream, {last['video_lost_pct']:.2f} % video lost, "
            f"{last['video_gaps_over_100ms']} gaps")
    # The ratio where the peer still took every publisher (past that it
    # drops work, and its CPU per stream means little).
    whole = [r for r in rows if r["recorder"] != "tapedeck" and r["sent"]["connected"] == r["n"]]
    if whole:
        p = whole[-1]
        t = next(r for r in rows if r["recorder"] == "tapedeck" and r["n"] == p["n"])
        line += (f"; at {p['n']} streams {p['recorder']} used {p['cpu_pct_per_stream'] / t['cpu_pct_per_stream']:.1f}x "
                 f"the CPU and {p['rss_mb_per_stream'] / max(t['rss_mb_per_stream'], 0.01):.1f}x the memory per stream")
    print(line)


if __name__ == "__main__":
    main()
