"""Node loss (see bench/node_loss.sh): the cost of shipping live media to
the bucket, against the same load with shipping off, and the time from a
kill -9 to every recording the node held completed on another."""
import argparse
import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websockets

from cluster_bench import PAGE, Api, cpu_of, make_key

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def start_cluster(n, d, tapedeck, extra):
    env = dict(os.environ, NODES=str(n), CLUSTER_DIR=d, CLUSTER_BIN=tapedeck,
               TAPEDECK_LIMITS__MAX_CONCURRENT="500", TAPEDECK_LIMITS__MAX_CONCURRENT_PER_USER="500",
               TAPEDECK_CLUSTER__DRAIN_S="1", **extra)
    p = subprocess.Popen([os.path.join(ROOT, "scripts/cluster.sh")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    while not os.path.exists(os.path.join(d, "admin.key")):
        if p.poll() is not None or time.monotonic() - t0 > 120:
            raise SystemExit(f"the cluster did not start (see {d}/logs)")
        time.sleep(0.2)
    time.sleep(0.5)
    db = open(os.path.join(d, "db.url")).read().strip()
    return p, db


def stop_cluster(p, d):
    os.killpg(p.pid, signal.SIGINT)
    p.wait(timeout=120)
    # The nodes are not the script's children (each has a start script):
    # gone before the next cluster takes their ports.
    for f in os.listdir(d):
        if f.endswith(".pid"):
            pid = int(open(os.path.join(d, f)).read())
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def shipped(base):
    out = {}
    with urllib.request.urlopen(base + "/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("tapedeck_shipped_bytes_total{kind="):
                kind = line.split('"')[1]
                out[kind] = float(line.rsplit(" ", 1)[1])
    return out


def jpegs(work, seconds, rate=5):
    d = os.path.join(work, "frames")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={rate}",
                    "-vf", "noise=alls=2:allf=t", "-frames:v", str(seconds * rate), "-q:v", "3",
                    os.path.join(d, "f%04d.jpg")], check=True)
    return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))]


async def camera(base, token, rid, pics, seconds, rate=5):
    """Sends `seconds` of pictures in real time; stops on a closed socket."""
    url = base.replace("http", "ws") + f"/v1/recordings/{rid}/frames?token={token}"
    t0 = time.monotonic()
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            for k in range(seconds * rate):
                await asyncio.sleep(max(0.0, t0 + k / rate - time.monotonic()))
                await ws.send(json.dumps({"pts_ms": k * 1000 / rate}))
                await ws.send(pics[k % len(pics)])
    except (websockets.ConnectionClosed, OSError):
        pass


def create(api, body):
    st, r = api.call("POST", "/v1/recordings", body)
    assert st == 201, (st, r)
    return r["id"]


def cost(args, work, pics):
    """One node, the same cameras with shipping off, then on."""
    rows = []
    for ship in ("false", "true"):
        d = os.path.join(work, f"cost-{ship}")
        p, db = start_cluster(1, d, args.tapedeck, {"TAPEDECK_CLUSTER__SHIP_LIVE": ship,
                                                    "TAPEDECK_LIMITS__CPU_BUDGET_CORES": "8"})
        try:
            node = "http://127.0.0.1:8081"
            pid = int(open(os.path.join(d, "n1.pid")).read())
            api = Api(node, make_key(args.tapedeck, db, d, "bench"))
            body = {"source": {"kind": "frames", "input_fps": 5}, "preset": "medium", "format": "mp4"}
            ids = [create(api, body) for _ in range(args.cameras)]

            async def go():
                await asyncio.gather(*[camera(node, api.token, i, pics, args.seconds) for i in ids])
            c0 = cpu_of(pid)
            t0 = time.monotonic()
            asyncio.run(go())
            took = time.monotonic() - t0
            c1 = cpu_of(pid)
            sent = shipped(node).get("frames", 0.0)
            rows.append((ship, (c1 - c0) / took, sent / (args.cameras * args.seconds)))
            for i in ids:
                api.call("POST", f"/v1/recordings/{i}/stop")
        finally:
            stop_cluster(p, d)
    (_, off, _), (_, on, per) = rows
    print(f"# cost: {args.cameras} cameras for {args.seconds} s on one node: {off * 100:.1f} % of a core with "
          f"shipping off, {on * 100:.1f} % with it on (x{on / off:.3f}); {per / 1024:.1f} KiB shipped per "
          f"camera-second", file=sys.stderr)
    return off, on, per


def serve_page():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def clips(work):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-t", "10",
                    "-c:v", "libvpx", "-b:v", "1500k", "-minrate", "1500k", "-maxrate", "1500k", "-g", "60",
                    "-deadline", "realtime", "-cpu-used", "8", "-auto-alt-ref", "0", f"{work}/clip.ivf"], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "10", "-ac", "2",
                    "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", f"{work}/clip.opus"], check=True)


def loss(args, work, pics):
    """Three nodes; the first holds one of each kind; kill -9 of it."""
    page = serve_page()
    clips(work)
    d = os.path.join(work, "loss")
    p, db = start_cluster(3, d, args.tapedeck, {"TAPEDECK_WEB__ALLOWED_HOSTS": f'["127.0.0.1:{page}"]'})
    try:
        n1, lb = "http://127.0.0.1:8081", "http://127.0.0.1:8080"
        token = make_key(args.tapedeck, db, d, "bench")
        api, via_lb = Api(n1, token), Api(lb, token)
        started = time.monotonic()
        cams = [create(api, {"source": {"kind": "frames", "input_fps": 5}, "preset": "medium"})
                for _ in range(2)]
        web = create(api, {"source": {"kind": "web", "url": f"http://127.0.0.1:{page}/", "mode": "realtime",
                                      "audio": False,
                                      "script": [{"type": "wait", "duration_ms": args.seconds * 4000}]},
                           "preset": "low"})
        st, room = api.call("POST", "/v1/rooms", {"name": "bench"})
        assert st == 201, room
        toks = []
        for name in ("a", "b"):
            st, inv = api.call("POST", f"/v1/rooms/{room['id']}/invites", {"name": name})
            toks += ["--token", inv["token"]]
        call = create(api, {"source": {"kind": "room", "room": room["id"]}})
        pub = subprocess.Popen([f"{args.bin}/tapedeck-loadgen", "--video", f"{work}/clip.ivf", "--audio",
                                f"{work}/clip.opus", "--seconds", str(args.seconds * 4), "--whip",
                                f"{n1}/v1/rooms/{room['id']}/whip"] + toks,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # An upload of a 720p VP8 WebM (about 40 MiB), 1 MiB a second.
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-t", "40",
                        "-c:v", "libvpx", "-b:v", "8M", "-deadline", "realtime", "-cpu-used", "8",
                        f"{work}/upload.webm"], check=True)
        blob = open(f"{work}/upload.webm", "rb").read()
        req = urllib.request.Request(n1 + "/v1/uploads", method="POST", headers={
            "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", "Upload-Length": str(len(blob))})
        with urllib.request.urlopen(req) as r:
            up_path = r.headers["Location"].split("127.0.0.1:8081", 1)[-1]
        upload = up_path.rsplit("/", 1)[1]
        state = {"offset": 0}

        def patch(base, chunk):
            req = urllib.request.Request(base + up_path, data=chunk, method="PATCH", headers={
                "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(state["offset"]), "Content-Type": "application/offset+octet-stream"})
            with urllib.request.urlopen(req) as r:
                state["offset"] = int(r.headers["Upload-Offset"])

        async def before():
            async def uploads():
                for _ in range(args.seconds):
                    await asyncio.to_thread(patch, n1, blob[state["offset"]:state["offset"] + (1 << 20)])
                    await asyncio.sleep(1)
            await asyncio.gather(uploads(), *[camera(n1, token, c, pics, args.seconds) for c in cams])
        asyncio.run(before())
        elapsed = time.monotonic() - started
        by_kind = shipped(n1)
        pid = int(open(os.path.join(d, "n1.pid")).read())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        # The upload goes on through the load balancer once another node has it.
        while True:
            req = urllib.request.Request(lb + up_path, method="HEAD", headers={
                "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"})
            try:
                with urllib.request.urlopen(req) as r:
                    state["offset"] = int(r.headers["Upload-Offset"])
                    break
            except OSError:
                time.sleep(0.2)
        resumed = time.monotonic() - killed
        while state["offset"] < len(blob):
            patch(lb, blob[state["offset"]:state["offset"] + (8 << 20)])
        ids = {"frames": cams, "web": [web], "room": [call], "upload": [upload]}
        done = {}
        while len(done) < sum(len(v) for v in ids.values()):
            for kind, rs in ids.items():
                for i in rs:
                    if i in done:
                        continue
                    st, r = via_lb.call("GET", f"/v1/recordings/{i}")
                    if st == 200 and r["status"] in ("completed", "failed"):
                        done[i] = (kind, r, time.monotonic() - killed)
            if time.monotonic() - killed > 300:
                raise SystemExit(f"not completed 300 s after the kill: {set(sum(ids.values(), [])) - set(done)}")
            time.sleep(0.2)
        pub.kill()
        return elapsed, by_kind, resumed, done, len(cams)
    finally:
        stop_cluster(p, d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    a.tapedeck = os.path.realpath(os.path.join(a.bin, "tapedeck"))
    a.bin = os.path.realpath(a.bin)
    work = tempfile.mkdtemp(prefix="tapedeck-loss-")
    # PostgreSQL runs as its own user (scripts/cluster.sh, as root).
    os.chmod(work, 0o755)
    pics = jpegs(work, a.seconds)
    off, on, per = cost(a, work, pics)
    elapsed, by_kind, resumed, done, ncams = loss(a, work, pics)
    print("| what | figure |")
    print("|---|---|")
    print(f"| CPU of one node, {a.cameras} cameras, shipping off (the peer) | {off * 100:.1f} % of a core |")
    print(f"| the same, shipping on | {on * 100:.1f} % of a core (x{on / off:.3f}) |")
    print(f"| shipped per camera-second (720p JPEG at 5 fps) | {per / 1024:.1f} KiB |")
    secs = {"frames": ncams * elapsed, "web": elapsed, "room": elapsed, "upload": elapsed}
    for kind, b in sorted(by_kind.items()):
        print(f"| shipped per recording-second before the kill, {kind} | {b / secs[kind] / 1024:.1f} KiB |")
    print(f"| kill -9 to the upload answering HEAD on another node | {resumed:.1f} s |")
    for i, (kind, r, t) in sorted(done.items(), key=lambda x: x[1][2]):
        why = r.get("end_reason") if r["status"] == "completed" else (r.get("error") or {}).get("code")
        print(f"| kill -9 to {kind} {r['status']} ({why}) | {t:.1f} s |")


if __name__ == "__main__":
    main()
