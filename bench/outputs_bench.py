"""Drives bench/outputs.sh: live outputs of a 720p30 frames recording
(latency, CPU per output kind, HLS bytes) beside a peer that encodes once
per output with ffmpeg alone."""

import argparse
import asyncio
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from rooms_bench import api, free_port, serve  # noqa: E402

W, H, FPS = 1280, 720, 30
STRIP = -(-H * 3 // 100)
TICK = os.sysconf("SC_CLK_TCK")


def check_byte(clock, counter):
    c = clock ^ (clock >> 8) ^ (clock >> 16) ^ (clock >> 24)
    return (c ^ counter ^ (counter >> 8) ^ 0xA5) & 0xFF


def strip_row(i):
    """One row of frame i's barcode (gray): clock = its time in us, counter = i."""
    clock = (i * 1_000_000 // FPS) & 0xFFFFFFFF
    counter = i & 0xFFFF
    bits = [(clock >> (31 - b)) & 1 for b in range(32)] + [(counter >> (15 - b)) & 1 for b in range(16)]
    chk = check_byte(clock, counter)
    bits += [(chk >> (7 - b)) & 1 for b in range(8)]
    return bytes(0 if bits[x * 56 // W] else 255 for x in range(W))


def make_frames(d, n):
    """n JPEGs of a moving test pattern with frame i's barcode on top."""
    os.makedirs(d, exist_ok=True)
    p = subprocess.Popen(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{W}x{STRIP}", "-r", str(FPS), "-i", "pipe:0",
                          "-filter_complex", "[1]format=yuvj420p[b];[0][b]overlay=0:0", "-frames:v", str(n),
                          "-q:v", "3", os.path.join(d, "f%05d.jpg")], stdin=subprocess.PIPE)
    for i in range(n):
        p.stdin.write(strip_row(i) * STRIP)
    p.stdin.close()
    p.wait()
    return [open(os.path.join(d, f"f{i + 1:05d}.jpg"), "rb").read() for i in range(n)]


def decode_strip(buf):
    """(clock, counter) in a 448x8 gray strip, or None."""
    bits = []
    for i in range(56):
        s = sum(buf[y * 448 + i * 8 + x] for y in range(2, 6) for x in range(2, 6))
        bits.append(1 if s / 16 < 128 else 0)
    take = lambda a, n: int("".join(map(str, bits[a:a + n])), 2)  # noqa: E731
    clock, counter, chk = take(0, 32), take(32, 16), take(48, 8)
    return (clock, counter) if check_byte(clock, counter) == chk else None


def tree_cpu(pids):
    """utime+stime (s) of `pids` and every process below them."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                kids.setdefault(int(fields[1]), []).append((int(d), int(fields[11]) + int(fields[12])))
            except OSError:
                pass
    total, todo, own = 0, list(pids), {}
    for ps in kids.values():
        for pid, t in ps:
            own[pid] = t
    while todo:
        pid = todo.pop()
        total += own.get(pid, 0)
        todo += [c for c, _ in kids.get(pid, [])]
    return total / TICK


def role(pid):
    """What one of tapedeck's ffmpegs does, by its arguments."""
    try:
        args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return None
    if b"ffmpeg" not in args[0]:
        return None
    if b"flv" in args or b"mpegts" in args:
        return "push"
    if b"hls" in args and b"h264" in args:
        return "hls remux"
    return "encoder"


def output_cpu(root):
    """CPU seconds so far of root's ffmpeg children, by role."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            r = role(int(d))
            if r:
                out[r] = out.get(r, 0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def start_nginx(work):
    port = free_port()
    d = os.path.join(work, f"nginx-{port}")
    os.makedirs(d)
    conf = os.path.join(d, "nginx.conf")
    open(conf, "w").write(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\ndaemon off;\nmaster_process off;\n"
        f"pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}\n")
    p = subprocess.Popen(["nginx", "-p", d, "-e", f"{d}/error.log", "-c", conf])
    time.sleep(0.5)
    return p, port


class RtmpReader(threading.Thread):
    """Plays rtmp://.../live/cam with ffmpeg; (counter, time) per picture."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.seen, self.clocks, self.proc = url, [], [], None

    def run(self):
        while self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                ["ffmpeg", "-v", "error", "-fflags", "nobuffer", "-i", self.url, "-vf",
                 "crop=iw:ih*0.03:0:0,scale=448:8:flags=area,format=gray", "-f", "rawvideo", "-"],
                stdout=subprocess.PIPE)
            while True:
                buf = self.proc.stdout.read(448 * 8)
                if len(buf) < 448 * 8:
                    break
                m = decode_strip(buf)
                if m is not None:
                    self.seen.append((m[1], time.time()))
                    self.clocks.append((m[0], time.time()))
            if self.seen:
                return
            time.sleep(0.5)

    def stop(self):
        if self.proc:
            self.proc.kill()


def hls_reader(base, playlist, seconds):
    """hls.js in Chromium (tests/e2e/hls_live.mjs) on `playlist`."""
    return subprocess.Popen(["node", os.path.join(ROOT, "tests/e2e/hls_live.mjs"), base, "-", "-", str(seconds), playlist],
                            stdout=subprocess.PIPE, text=True)


def hls_seen(proc):
    out, _ = proc.communicate()
    last = json.loads(out.strip().splitlines()[-1])
    return [(r["counter"], r["at"] / 1000) for r in last["lines"] if r.get("counter") is not None]


def hls_clocks(proc):
    out, _ = proc.communicate()
    last = json.loads(out.strip().splitlines()[-1])
    return [(r["clock"], r["at"] / 1000) for r in last["lines"] if r.get("clock") is not None]


def wall_latencies(clocks):
    """Latency of each reading of the clock page's wall clock (?wall=1:
    Date.now in µs, modulo 2^32) against the reader's time, same machine."""
    ls = [(((round(t * 1e6) % 2**32) - c) % 2**32) / 1e6 for c, t in clocks]
    return summary(ls)


def summary(ls):
    if not ls:
        return None
    ls.sort()
    return {"n": len(ls), "p50": statistics.median(ls), "p95": ls[int(len(ls) * 0.95) - 1]}


def latencies(seen, sent):
    ls = [t - sent[c] for c, t in seen if c in sent]
    if not ls:
        return None
    ls.sort()
    return {"n": len(ls), "p50": statistics.median(ls), "p95": ls[int(len(ls) * 0.95) - 1]}


async def push(url, frames, seconds, sent):
    async with websockets.connect(url, max_size=None) as ws:
        async def drain():
            # The server's progress messages, read so its socket flows.
            async for _ in ws:
                pass
        reader = asyncio.ensure_future(drain())
        t0 = time.time()
        for i in range(seconds * FPS):
            due = t0 + i / FPS
            await asyncio.sleep(max(0, due - time.time()))
            sent[i] = time.time()
            await ws.send(json.dumps({"pts_ms": i * 1000 / FPS}))
            await ws.send(frames[i])
        reader.cancel()


def run_tapedeck(args, frames, outputs, tag, nginx_port):
    data = os.path.join(args.work, f"data-{tag}")
    proc, base, key = serve(args.tapedeck, args.work, tag, TAPEDECK_OUTPUTS__ALLOW_PRIVATE_NETWORKS="true",
                            TAPEDECK_LOG="warn", TAPEDECK_RTC__UDP_PORT="0", TAPEDECK_LIMITS__MAX_DURATION_S="3600")
    rec = api(base, key, "POST", "/v1/recordings", {"source": {"kind": "frames"}, "width": W, "height": H,
                                                   "fps": FPS, "outputs": outputs})
    rid, sent = rec["id"], {}
    readers = {}
    result = {"tag": tag}

    def measure():
        time.sleep(8)
        if any(o["kind"] == "hls" for o in outputs):
            readers["hls"] = hls_reader(base, f"{base}/v1/recordings/{rid}/hls/index.m3u8?token={key}", args.seconds - 16)
        if any(o["kind"] == "rtmp" for o in outputs):
            readers["rtmp"] = RtmpReader(f"rtmp://127.0.0.1:{nginx_port}/live/{tag}")
            readers["rtmp"].start()
        c1, t1, r1 = tree_cpu([proc.pid]), time.time(), output_cpu(proc.pid)
        time.sleep(args.seconds - 16)
        dt = time.time() - t1
        result["cpu_pct"] = 100 * (tree_cpu([proc.pid]) - c1) / dt
        r2 = output_cpu(proc.pid)
        result["by_process_pct"] = {k: round(100 * (v - r1.get(k, 0)) / dt, 2) for k, v in r2.items()}

    m = threading.Thread(target=measure)
    m.start()
    try:
        asyncio.run(push(f"ws://127.0.0.1:{port}/v1/recordings/{rid}/frames?token={key}", frames, args.seconds, sent))
    except BaseException:
        proc.kill()
        raise
    m.join()
    if "hls" in readers:
        result["hls"] = latencies(hls_seen(readers["hls"]), sent)
    if "rtmp" in readers:
        readers["rtmp"].stop()
        result["rtmp"] = latencies(readers["rtmp"].seen, sent)
    api(base, key, "POST", f"/v1/recordings/{rid}/stop")
    for _ in range(600):
        r = api(base, key, "GET", f"/v1/recordings/{rid}")
        if r["status"] in ("completed", "failed"):
            break
        time.sleep(0.5)
    result["status"] = r["status"]
    result["mp4_bytes"] = r.get("size_bytes")
    result["duration_s"] = r.get("duration_s")
    hls_dir = os.path.join(data, "media", "recordings", rid, "hls")
    if os.path.isdir(hls_dir):
        result["hls_bytes"] = sum(os.path.getsize(os.path.join(hls_dir, f)) for f in os.listdir(hls_dir))
    proc.terminate()
    proc.wait()
    return result


def run_web(args, nginx_port, sound=False):
    """A realtime web recording of the clock page (?wall=1) at 720p30 with
    HLS (2 s) and RTMP outputs: glass to glass, page to player, capture
    included; with `sound`, the page's sound recorded (and laid under the
    live outputs, the pictures waiting for it)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(Quiet, directory=os.path.join(HERE, "pages")))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/clock.html?wall=1"
    proc, base, key = serve(args.tapedeck, args.work, "web", TAPEDECK_OUTPUTS__ALLOW_PRIVATE_NETWORKS="true",
                            TAPEDECK_WEB__ALLOW_PRIVATE_NETWORKS="true", TAPEDECK_LOG="warn",
                            TAPEDECK_RTC__UDP_PORT="0")
    rec = api(base, key, "POST", "/v1/recordings", {
        "source": {"kind": "web", "url": url, "mode": "realtime", "audio": sound,
                   "script": [{"type": "wait", "duration_ms": args.seconds * 1000}]},
        "width": W, "height": H, "fps": FPS,
        "outputs": [{"kind": "hls", "segment_s": 2}, {"kind": "rtmp", "url": f"rtmp://127.0.0.1:{nginx_port}/live/web"}]})
    rid = rec["id"]
    time.sleep(8)
    hls = hls_reader(base, f"{base}/v1/recordings/{rid}/hls/index.m3u8?token={key}", args.seconds - 16)
    rtmp = RtmpReader(f"rtmp://127.0.0.1:{nginx_port}/live/web")
    rtmp.start()
    tag = "web (clock page, realtime, with its sound)" if sound else "web (clock page, realtime)"
    result = {"tag": tag, "hls": wall_latencies(hls_clocks(hls))}
    rtmp.stop()
    result["rtmp"] = wall_latencies(rtmp.clocks)
    for _ in range(600):
        r = api(base, key, "GET", f"/v1/recordings/{rid}")
        if r["status"] in ("completed", "failed"):
            break
        time.sleep(0.5)
    result["status"] = r["status"]
    proc.terminate()
    proc.wait()
    srv.shutdown()
    return result


def run_peer(args, frames, kinds, nginx_port):
    """ffmpeg alone: one libx264 encode per output of the same frames."""
    d = os.path.join(args.work, "peer-" + "-".join(kinds))
    os.makedirs(d, exist_ok=True)
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-maxrate", "2500k", "-bufsize", "5000k",
           "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0"]
    procs = []
    for k in kinds:
        cmd = ["ffmpeg", "-v", "error", "-f", "image2pipe", "-framerate", str(FPS), "-i", "pipe:0"] + enc
        if k == "hls":
            cmd += ["-f", "hls", "-hls_time", "1.5", "-hls_segment_type", "fmp4", "-hls_playlist_type", "event",
                    "-hls_flags", "independent_segments+temp_file", "-hls_segment_filename", f"{d}/s%05d.m4s",
                    f"{d}/index.m3u8"]
        else:
            cmd += ["-f", "flv", f"rtmp://127.0.0.1:{nginx_port}/live/peer"]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE))
    http = None
    if "hls" in kinds:
        hport = free_port()
        http = subprocess.Popen([sys.executable, "-m", "http.server", str(hport), "--bind", "127.0.0.1", "-d", d],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The player page loads hls.js from the server it plays from.
        os.makedirs(os.path.join(d, "vendor"), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "crates/tapedeck-server/assets/vendor/hls.light.min.js"),
                    os.path.join(d, "vendor", "hls.js"))
    sent, readers, result = {}, {}, {"tag": "peer " + "+".join(kinds)}

    def measure():
        time.sleep(8)
        if http:
            readers["hls"] = hls_reader(f"http://127.0.0.1:{hport}", f"http://127.0.0.1:{hport}/index.m3u8", args.seconds - 16)
        if "rtmp" in kinds:
            readers["rtmp"] = RtmpReader(f"rtmp://127.0.0.1:{nginx_port}/live/peer")
            readers["rtmp"].start()
        c1, t1 = tree_cpu([p.pid for p in procs]), time.time()
        time.sleep(args.seconds - 16)
        result["cpu_pct"] = 100 * (tree_cpu([p.pid for p in procs]) - c1) / (time.time() - t1)

    m = threading.Thread(target=measure)
    m.start()
    t0 = time.time()
    for i in range(args.seconds * FPS):
        time.sleep(max(0, t0 + i / FPS - time.time()))
        sent[i] = time.time()
        for p in procs:
            p.stdin.write(frames[i])
            p.stdin.flush()
    m.join()
    for p in procs:
        p.stdin.close()
        p.wait()
    if "hls" in readers:
        result["hls"] = latencies(hls_seen(readers["hls"]), sent)
    if "rtmp" in readers:
        readers["rtmp"].stop()
        result["rtmp"] = latencies(readers["rtmp"].seen, sent)
    if http:
        http.terminate()
    return result


def fmt(lat):
    return f"{lat['p50']:.2f} / {lat['p95']:.2f} s (n={lat['n']})" if lat else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--web-only", action="store_true", help="only the clock page's glass-to-glass latency")
    args = ap.parse_args()
    args.work = tempfile.mkdtemp(prefix="tapedeck-outputs-")
    if args.web_only:
        nginx, nport = start_nginx(args.work)
        try:
            for sound in (False, True):
                print(json.dumps(run_web(args, nport, sound)), flush=True)
        finally:
            nginx.kill()
        return
    frames = make_frames(os.path.join(args.work, "frames"), args.seconds * FPS)
    nginx, nport = start_nginx(args.work)
    srt_port = free_port()
    runs = [
        ("none", []),
        ("hls", [{"kind": "hls", "segment_s": 2}]),
        ("images", [{"kind": "images", "every_s": 10}]),
        ("rtmp", [{"kind": "rtmp", "url": None}]),
        ("srt", [{"kind": "srt", "url": f"srt://127.0.0.1:{srt_port}"}]),
    ]
    rows = []
    try:
        for tag, outs in runs:
            srt = None
            for o in outs:
                if o["kind"] == "rtmp":
                    o["url"] = f"rtmp://127.0.0.1:{nport}/live/{tag}"
                if o["kind"] == "srt":
                    srt = subprocess.Popen(["ffmpeg", "-v", "quiet", "-y", "-i", f"srt://127.0.0.1:{srt_port}?mode=listener",
                                            "-c", "copy", "-f", "mpegts", os.path.join(args.work, "srt.ts")])
            rows.append(run_tapedeck(args, frames, outs, tag, nport))
            if srt:
                srt.kill()
            print(json.dumps(rows[-1]), flush=True)
        peer = [run_peer(args, frames, ["hls"], nport), run_peer(args, frames, ["rtmp"], nport)]
        for p in peer:
            print(json.dumps(p), flush=True)
        web = run_web(args, nport)
        print(json.dumps(web), flush=True)
        web_sound = run_web(args, nport, True)
        print(json.dumps(web_sound), flush=True)
    finally:
        nginx.kill()
    base = rows[0]["cpu_pct"]
    print(f"\n{'output':<8} {'tapedeck CPU % (added)':>24} {'latency p50 / p95':>26}  its own processes, CPU %")
    for r in rows:
        lat = r.get("hls") or r.get("rtmp")
        own = {k: v for k, v in r.get("by_process_pct", {}).items() if k != "encoder"}
        print(f"{r['tag']:<8} {r['cpu_pct']:>10.1f} ({r['cpu_pct'] - base:+6.1f}) {fmt(lat):>30}  {own}")
    print(f"\n{'peer (ffmpeg, an encode per output)':<36} {'CPU %':>8} {'latency p50 / p95':>26}")
    for p in peer:
        print(f"{p['tag']:<36} {p['cpu_pct']:>8.1f} {fmt(p.get('hls') or p.get('rtmp')):>30}")
    h = next(r for r in rows if r["tag"] == "hls")
    minutes = (h.get("duration_s") or args.seconds) / 60
    print(f"\nHLS bytes per recording-minute: {h.get('hls_bytes', 0) / minutes / 1e6:.2f} MB beside the MP4's "
          f"{h['mp4_bytes'] / minutes / 1e6:.2f} MB (x{h.get('hls_bytes', 0) / h['mp4_bytes']:.3f})")
    for kind, td, pr in (("hls", h, peer[0]), ("rtmp", next(r for r in rows if r["tag"] == "rtmp"), peer[1])):
        added = td["cpu_pct"] - base
        print(f"{kind}: CPU added tapedeck/peer x{added / pr['cpu_pct']:.3f}; latency p50 tapedeck/peer "
              f"x{(td[kind] or {}).get('p50', float('nan')) / (pr[kind] or {}).get('p50', float('nan')):.2f}")
    print(f"\nthe clock page recorded in realtime (web), page to player: hls {fmt(web['hls'])}, rtmp {fmt(web['rtmp'])}")
    print(f"the same with its sound live: hls {fmt(web_sound['hls'])}, rtmp {fmt(web_sound['rtmp'])}")
    shutil.rmtree(os.path.join(args.work, "frames"), ignore_errors=True)


if __name__ == "__main__":
    main()
