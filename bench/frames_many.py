#!/usr/bin/env python3
"""Many cameras at once (see bench/frames_many.sh).

N concurrent frames recordings, each a camera page's stream: 720p JPEG at
5 fps in (a moving test pattern with sensor noise), 720p30 MP4 out, for S
seconds. tapedeck: one `tapedeck serve`, N WebSocket clients in this
process. The peer: N OpenCV `VideoWriter` processes (mp4v, 30 fps, each
picture written 6 times as a CFR writer must), each paced at 5 fps.

CPU is read from /proc for the recorder's processes only (tapedeck and its
ffmpeg children; the OpenCV processes), over the steady middle of the run:
percent of one core per stream. Memory: the recorder's processes' proportional set size (PSS: shared
library pages counted once) at the middle, per stream. Complete: the file has every frame
(ffprobe: S x 30 +- 1) and every picture sent was used (tapedeck: the
recording's frames_in is S x 5 with none dropped; OpenCV: the writer kept
pace, finishing within 10 % of S).
"""
import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root):
    """root and every descendant pid."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError:
                pass
    out, todo = [], list(root)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_s(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += int(v[11]) + int(v[12])
        except OSError:
            pass
    return total / TICK


def pss_mb(pids):
    """Proportional set size: shared pages (the libraries every ffmpeg maps) counted once in all."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / 1e6


class Window:
    """CPU of a process tree between two instants, tracking pids that come and go."""

    def __init__(self, roots):
        self.roots = roots
        self.seen = {}
        self.kind = {}

    def sample(self):
        pids = tree(self.roots)
        for p in pids:
            try:
                with open(f"/proc/{p}/stat") as f:
                    v = f.read().rsplit(")", 1)[1].split()
                self.seen[p] = (int(v[11]) + int(v[12])) / TICK
                if p not in self.kind:
                    self.kind[p] = kind_of(p, self.roots)
            except OSError:
                pass
        return sum(self.seen.values()), pss_mb(pids)

    def by_kind(self):
        """CPU seconds so far per kind of process."""
        out = {}
        for p, s in self.seen.items():
            out[self.kind.get(p, "other")] = out.get(self.kind.get(p, "other"), 0) + s
        return out


def kind_of(pid, roots):
    """The recorder itself, an encoder or a muxer (ffmpeg copying a stream)."""
    if pid in roots:
        return "recorder"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return "other"
    if b"copy" in args:
        return "muxer"
    if b"libx264" in args or b"libvpx-vp9" in args:
        return "encoder"
    return "other"


def frames_of(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                         capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


def api(base, token, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


# The latest a client sent a picture, in seconds after it was due: past a
# fraction of a second the clients (on the same machine) did not keep pace,
# and a late client sends its backlog in a burst.
LATE = [0.0]
# When the last camera was stopped (monotonic seconds).
STOPPED = [0.0]
# The recordings made, as they are made.
MADE = []
# How many were deferred (spooled, encoded after), seen mid-run.
DEFERRED = [0]
# Seconds from the last stop to the last completed.
AFTER = [0.0]


async def camera(base, token, jpegs, seconds, rate, t0):
    """One camera's recording; None when the server refused it as busy (429)."""
    try:
        rec = await asyncio.to_thread(api, base, token, "POST", "/v1/recordings",
                                      {"source": {"kind": "frames", "input_fps": rate}, "preset": "medium",
                                       "format": "mp4"})
    except urllib.error.HTTPError as e:
        if e.code == 429:
            return None
        raise
    MADE.append(rec["id"])
    ws_url = base.replace("http", "ws") + f"/v1/recordings/{rec['id']}/frames?token={token}"
    # A busy server may take a while to answer 100 handshakes at once.
    async with websockets.connect(ws_url, max_size=None, ping_interval=None, open_timeout=120) as ws:
        n = seconds * rate
        for k in range(n):
            due = t0 + k / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            LATE[0] = max(LATE[0], time.monotonic() - due)
            await ws.send(json.dumps({"pts_ms": k * 1000 / rate}))
            await ws.send(jpegs[k % len(jpegs)])
    await asyncio.to_thread(api, base, token, "POST", f"/v1/recordings/{rec['id']}/stop", {})
    STOPPED[0] = max(STOPPED[0], time.monotonic())
    return rec["id"]


def run_tapedeck(args, jpegs, work):
    data = os.path.join(work, "data")
    token = subprocess.run([args.tapedeck, "keys", "create", "--user", "bench", "--data-dir", data],
                           check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    port = 18000 + os.getpid() % 1000
    env = dict(os.environ, TAPEDECK_LIMITS__MAX_CONCURRENT=str(args.streams + 10),
               TAPEDECK_LIMITS__MAX_CONCURRENT_PER_USER=str(args.streams + 10))
    if args.budget:
        env["TAPEDECK_LIMITS__CPU_BUDGET_CORES"] = args.budget
    if args.all_busy:
        env["TAPEDECK_ENCODER__BUSY_ABOVE"] = "0"
    srv = subprocess.Popen([args.tapedeck, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz")
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    win = Window([srv.pid])

    async def all_cameras():
        LATE[0] = 0.0
        STOPPED[0] = 0.0
        MADE.clear()
        DEFERRED[0] = 0
        t0 = time.monotonic() + 2
        tasks = [asyncio.create_task(camera(base, token, jpegs, args.seconds, args.rate, t0))
                 for _ in range(args.streams)]
        await asyncio.sleep(2 + args.seconds * 0.2)
        c0, _ = win.sample()
        k0 = win.by_kind()
        m0 = time.monotonic()
        await asyncio.sleep(args.seconds * 0.3)
        _, rss = win.sample()
        # Cameras accepted beyond the budget say how far behind their encode is.
        recs = await asyncio.gather(*[asyncio.to_thread(api, base, token, "GET", f"/v1/recordings/{i}")
                                      for i in list(MADE)])
        DEFERRED[0] = sum(1 for r in recs if "encode_lag_s" in r["stats"])
        await asyncio.sleep(args.seconds * 0.3)
        c1, _ = win.sample()
        m1 = time.monotonic()
        running = max(1, sum(1 for t in tasks if not t.done() or t.result() is not None))
        split = ", ".join(f"{k} {(v - k0.get(k, 0)) * 100 / ((m1 - m0) * running):.2f}"
                          for k, v in sorted(win.by_kind().items()))
        print(f"# {args.streams} tapedeck, {running} admitted, steady % of a core per stream: {split}",
              file=sys.stderr)
        ids = [i for i in await asyncio.gather(*tasks) if i is not None]
        print(f"# {args.streams} tapedeck: the clients were at most {LATE[0]:.2f} s late", file=sys.stderr)
        return ids, (c1 - c0) / (m1 - m0), rss

    try:
        ids, cores, rss = asyncio.run(all_cameras())
    except BaseException:
        srv.kill()
        raise
    complete = 0
    done, last_done = {}, STOPPED[0]
    deadline = time.monotonic() + 1800
    while len(done) < len(ids) and time.monotonic() < deadline:
        for i in ids:
            if i in done:
                continue
            rec = api(base, token, "GET", f"/v1/recordings/{i}")
            if rec["status"] in ("completed", "failed"):
                done[i] = rec
                last_done = time.monotonic()
        time.sleep(0.2)
    print(f"# {args.streams} tapedeck: {DEFERRED[0]} deferred; from the last stop to the last completed "
          f"{last_done - STOPPED[0]:.1f} s", file=sys.stderr)
    AFTER[0] = last_done - STOPPED[0]
    for i in ids:
        rec = done.get(i) or api(base, token, "GET", f"/v1/recordings/{i}")
        if rec["status"] == "completed":
            out = os.path.join(work, f"{i}.mp4")
            with urllib.request.urlopen(urllib.request.Request(
                    base + f"/v1/recordings/{i}/media", headers={"Authorization": f"Bearer {token}"})) as r, \
                    open(out, "wb") as f:
                shutil.copyfileobj(r, f)
            st = rec["stats"]
            # Every picture sent arrived and was used, and the file has every frame.
            if (st["frames_in"] == args.seconds * args.rate and st["frames_dropped"] == 0
                    and abs(frames_of(out) - args.seconds * 30) <= 1):
                complete += 1
            else:
                print(f"# {i}: {st['frames_in']} in, {st['frames_dropped']} dropped, {frames_of(out)} frames",
                      file=sys.stderr)
    with open(f"/proc/{srv.pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    # The server and every ffmpeg it ran and reaped, from start to the last file.
    whole = sum(int(x) for x in v[11:15]) / TICK
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=60)
    return cores, rss, complete, whole, len(ids)


def run_opencv(args, frames_dir, work):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    started = time.monotonic()
    for i in range(args.streams):
        out = os.path.join(work, f"cv-{i}.mp4")
        procs.append((subprocess.Popen([sys.executable, os.path.join(HERE, "opencv_camera.py"), frames_dir,
                                        str(args.rate), str(args.seconds), out]), out))
    win = Window([p.pid for p, _ in procs])
    time.sleep(args.seconds * 0.2)
    c0, _ = win.sample()
    m0 = time.monotonic()
    time.sleep(args.seconds * 0.3)
    _, rss = win.sample()
    time.sleep(args.seconds * 0.3)
    c1, _ = win.sample()
    m1 = time.monotonic()
    complete = 0
    for p, out in procs:
        p.wait()
        kept_up = time.monotonic() - started <= args.seconds * 1.1 + 2
        if kept_up and abs(frames_of(out) - args.seconds * 30) <= 1:
            complete += 1
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    whole = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (c1 - c0) / (m1 - m0), rss, complete, whole, args.streams


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--streams", default="16,50,100")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rate", type=int, default=5)
    ap.add_argument("--peer", default="opencv", help="opencv or none")
    ap.add_argument("--budget", default="",
                    help="tapedeck's limits.cpu_budget_cores (default: its own, the machine's cores)")
    ap.add_argument("--all-busy", action="store_true",
                    help="every encoder at the busy preset (encoder.busy_above = 0)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tapedeck-cams-")
    frames_dir = os.path.join(work, "frames")
    os.makedirs(frames_dir)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={a.rate}",
                    "-vf", "noise=alls=2:allf=t", "-frames:v", str(a.seconds * a.rate), "-q:v", "3",
                    os.path.join(frames_dir, "f%04d.jpg")], check=True)
    jpegs = [open(os.path.join(frames_dir, f), "rb").read() for f in sorted(os.listdir(frames_dir))]
    rows = []
    for n in [int(x) for x in a.streams.split(",")]:
        a.streams = n
        for name in ["tapedeck"] + ([] if a.peer == "none" else ["opencv"]):
            sub = tempfile.mkdtemp(dir=work)
            cores, rss, complete, whole, took = (run_tapedeck(a, jpegs, sub) if name == "tapedeck"
                                                 else run_opencv(a, frames_dir, sub))
            took = max(took, 1)
            # Over the whole run: all the CPU the recorder spent, per stream per second of video.
            per = whole * 100 / (took * a.seconds)
            after = f"{AFTER[0]:.1f} ({DEFERRED[0]} deferred)" if name == "tapedeck" else "-"
            rows.append((n, name, cores * 100 / took, rss / took, complete, cores * 100, per, took, after))
            shutil.rmtree(sub, ignore_errors=True)
            print(f"# {n} {name}: {took} taken, {cores * 100:.0f} % of a core, {rss:.0f} MB, "
                  f"{complete}/{took} complete", file=sys.stderr)
    print("| streams offered | recorder | taken (the rest refused: 429 server_busy) | CPU % of a core per stream, steady "
          "| per stream, whole run | PSS MB per stream | complete | CPU % in all, steady | vs OpenCV (whole run) "
          "| last stop to last completed, s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    last = []
    for n, name, cpu, rss, complete, total, per, took, after in rows:
        peer = next((r for r in rows if r[0] == n and r[1] == "opencv"), None)
        ratio = f"x{per / peer[6]:.2f}" if peer and peer[6] > 0 else "-"
        print(f"| {n} | {name} | {took} | {cpu:.2f} | {per:.2f} | {rss:.1f} | {complete}/{took} | {total:.0f} | {ratio} "
              f"| {after} |")
        if name == "tapedeck":
            last.append(f"{n} offered: {took} taken, {complete}/{took} complete, {per:.2f} % of a core (whole run) "
                        f"and {rss:.1f} MB (PSS) each"
                        + (f", CPU x{per / peer[6]:.2f} OpenCV's ({peer[4]}/{n} complete)" if peer and peer[6] > 0 else ""))
    print("; ".join(last))

if __name__ == "__main__":
    main()
