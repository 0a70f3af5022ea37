"""A cluster of 1, 2 and 3 nodes on this machine, each run through HAProxy
(scripts/cluster.sh): web jobs per minute, control-API requests per second
and p99, the shared queue's claim latency, PostgreSQL transactions per job,
and the cost of forwarding a camera's socket. The one-node run is the peer
every other is compared with.

The nodes share this machine's cores: each gets 1/N of one node's CPU
budget, so the cluster's total budget is the same at every size, and what
is measured is what clustering costs, not capacity added.
"""
import argparse
import asyncio
import http.client
import json
import os
import signal
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = b"""<body style='margin:0;background:#eee'><div id=b style='width:80px;height:80px;background:#c00'></div>
<script>let n=0;(function f(){b.style.marginLeft=(n++%400)+'px';requestAnimationFrame(f)})()</script></body>"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Api:
    """Keep-alive JSON calls to one base URL."""

    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.host, self.port, self.token = u.hostname, u.port, token
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                data = None if body is None else json.dumps(body)
                self.conn.request(method, path, body=data, headers={
                    "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
        return 0, None


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK


def pg_xacts(db):
    out = subprocess.run(["psql", db, "-Atc",
                          "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def start_cluster(n, work, page_port, tapedeck):
    d = os.path.join(work, f"c{n}")
    env = dict(os.environ, NODES=str(n), CLUSTER_DIR=d, CLUSTER_BIN=tapedeck,
               TAPEDECK_LIMITS__CPU_BUDGET_CORES=f"{1.6 / n:.3f}",
               TAPEDECK_WEB__ALLOWED_HOSTS=f'["127.0.0.1:{page_port}"]',
               TAPEDECK_ENCODER__X264_PRESET="ultrafast")
    p = subprocess.Popen([os.path.join(ROOT, "scripts/cluster.sh")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    key_file = os.path.join(d, "admin.key")
    t0 = time.monotonic()
    while not os.path.exists(key_file):
        if p.poll() is not None or time.monotonic() - t0 > 120:
            raise SystemExit(f"the cluster of {n} did not start (see {d}/logs)")
        time.sleep(0.2)
    time.sleep(0.3)
    db = open(os.path.join(d, "db.url")).read().strip()
    pids = [int(open(os.path.join(d, f"n{i + 1}.pid")).read()) for i in range(n)]
    return p, d, db, pids


def make_key(tapedeck, db, d, user):
    out = subprocess.run([tapedeck, "keys", "create", "--user", user, "--data-dir", os.path.join(d, "keys")],
                         env=dict(os.environ, TAPEDECK_DATABASE__URL=db), capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def wait_all(api, ids, timeout=600):
    t0 = time.monotonic()
    left = set(ids)
    while left:
        for i in list(left):
            _, r = api.call("GET", f"/v1/recordings/{i}")
            if r["status"] in ("completed", "failed", "cancelled"):
                if r["status"] != "completed":
                    raise SystemExit(f"{i} {r['status']}: {r.get('error')}")
                left.discard(i)
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{len(left)} web recordings never completed")
        time.sleep(0.2)


def web_jobs(lb, keys, page, jobs):
    """Jobs from three users at once; the time from the first create to the last completed."""
    body = {"source": {"kind": "web", "url": page, "script": [{"type": "wait", "duration_ms": 1000}]},
            "preset": "low"}
    apis = [Api(lb, k) for k in keys]
    t0 = time.monotonic()
    ids = []
    for j in range(jobs):
        a = apis[j % len(apis)]
        st, r = a.call("POST", "/v1/recordings", body)
        assert st == 201, r
        ids.append((a, r["id"]))
    for a, i in ids:
        wait_all(a, [i])
    return time.monotonic() - t0


def claim_latency(lb, key, page, samples):
    """From a create's answer to a node holding it, on an idle cluster (polled every 5 ms)."""
    body = {"source": {"kind": "web", "url": page, "script": [{"type": "wait", "duration_ms": 200}]},
            "preset": "low"}
    a = Api(lb, key)
    out = []
    for _ in range(samples):
        st, r = a.call("POST", "/v1/recordings", body)
        assert st == 201, r
        t0 = time.monotonic()
        while True:
            _, g = a.call("GET", f"/v1/recordings/{r['id']}")
            if g.get("node"):
                out.append(time.monotonic() - t0)
                break
            time.sleep(0.005)
        wait_all(a, [r["id"]])
    return out


def control_api(lb, key, rec, seconds, threads):
    lat, stop = [], time.monotonic() + seconds
    lock = threading.Lock()

    def worker():
        a = Api(lb, key)
        mine = []
        while time.monotonic() < stop:
            t = time.monotonic()
            st, _ = a.call("GET", f"/v1/recordings/{rec}")
            assert st == 200
            mine.append(time.monotonic() - t)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(lat) / seconds, pct(lat, 99)


async def socket_rtt(url, n):
    """Round trips of a bad control message, answered at once by the holder."""
    out = []
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        for _ in range(n):
            t = time.monotonic()
            await ws.send('{"pts_ms": "not a number"}')
            while True:
                m = json.loads(await ws.recv())
                if "error" in m:
                    break
            out.append(time.monotonic() - t)
    return out


async def stream(url, jpeg, seconds, fps):
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        t0 = time.monotonic()
        for k in range(int(seconds * fps)):
            await asyncio.sleep(max(0.0, t0 + k / fps - time.monotonic()))
            await ws.send(jpeg)


def forwarding(nodes, key, pids, jpeg, seconds):
    """RTT direct to the holder and through another node; CPU of the forwarding node per stream."""
    a = Api(nodes[0], key)
    st, rec = a.call("POST", "/v1/recordings", {"source": {"kind": "frames"}, "preset": "low"})
    assert st == 201, rec
    path = f"/v1/recordings/{rec['id']}/frames?token={key}"
    direct = asyncio.run(socket_rtt(nodes[0].replace("http", "ws") + path, 300))
    via = asyncio.run(socket_rtt(nodes[1].replace("http", "ws") + path, 300)) if len(nodes) > 1 else None
    cpu = None
    if len(nodes) > 1:
        idle0 = cpu_of(pids[1])
        time.sleep(seconds)
        idle = cpu_of(pids[1]) - idle0
        c0 = cpu_of(pids[1])
        asyncio.run(stream(nodes[1].replace("http", "ws") + path, jpeg, seconds, 30))
        cpu = (cpu_of(pids[1]) - c0 - idle) / seconds
    a.call("POST", f"/v1/recordings/{rec['id']}/cancel")
    return direct, via, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--nodes", default="1,2,3")
    ap.add_argument("--jobs", type=int, default=18)
    ap.add_argument("--claims", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    import tempfile
    work = tempfile.mkdtemp(prefix="tapedeck-cluster-bench-")
    # PostgreSQL runs as its own user when this runs as root: it must reach its folder.
    os.chmod(work, 0o755)
    page_dir = os.path.join(work, "pages")
    os.makedirs(page_dir)
    with open(os.path.join(page_dir, "index.html"), "wb") as f:
        f.write(PAGE)
    page_port = 58000 + os.getpid() % 1000
    site = subprocess.Popen(["python3", "-m", "http.server", str(page_port), "--bind", "127.0.0.1"],
                            cwd=page_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page = f"http://127.0.0.1:{page_port}/index.html"
    jpeg_path = os.path.join(work, "frame.jpg")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720", "-frames:v", "1",
                    "-q:v", "4", jpeg_path], check=True)
    jpeg = open(jpeg_path, "rb").read()
    rows = []
    try:
        for n in [int(x) for x in args.nodes.split(",")]:
            proc, d, db, pids = start_cluster(n, work, page_port, args.tapedeck)
            try:
                lb = "http://127.0.0.1:8080"
                nodes = [f"http://127.0.0.1:{8081 + i}" for i in range(n)]
                keys = [make_key(args.tapedeck, db, d, u) for u in ("ann", "bob", "cat")]
                x0 = pg_xacts(db)
                time.sleep(5)
                idle_rate = (pg_xacts(db) - x0) / 5
                x0, t0 = pg_xacts(db), time.monotonic()
                took = web_jobs(lb, keys, page, args.jobs)
                xacts = pg_xacts(db) - x0 - idle_rate * (time.monotonic() - t0)
                claims = claim_latency(lb, keys[0], page, args.claims)
                _, recs = Api(lb, keys[0]).call("GET", "/v1/recordings?limit=1&status=completed")
                rps, p99 = control_api(lb, keys[0], recs["recordings"][0]["id"], args.seconds, 8)
                direct, via, fcpu = forwarding(nodes, keys[1], pids, jpeg, args.seconds)
                rows.append({
                    "nodes": n, "jobs_per_min": args.jobs / took * 60,
                    "api_rps": rps, "api_p99_ms": p99 * 1000,
                    "claim_p50_ms": pct(claims, 50) * 1000, "claim_p99_ms": pct(claims, 99) * 1000,
                    "xacts_per_job": xacts / args.jobs, "idle_xacts_per_s": idle_rate,
                    "rtt_direct_ms": pct(direct, 50) * 1000,
                    "rtt_forwarded_ms": None if via is None else pct(via, 50) * 1000,
                    "forward_cpu_pct": None if fcpu is None else fcpu * 100,
                })
                print(json.dumps(rows[-1]), flush=True)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    finally:
        site.terminate()
    mbit = len(jpeg) * 8 * 30 / 1e6
    print()
    print(f"{len(os.sched_getaffinity(0))} cores shared by every node; each node's budget is 1.6/N cores.")
    print("| nodes | web jobs/min | API req/s | API p99 ms | claim p50 ms | claim p99 ms "
          "| PG xacts/job | idle PG xacts/s | socket RTT direct ms | via another node ms | forwarding CPU % of a core |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, f="{:.1f}": "-" if v is None else f.format(v)
    for r in rows:
        print(f"| {r['nodes']} | {r['jobs_per_min']:.1f} | {r['api_rps']:.0f} | {r['api_p99_ms']:.1f} "
              f"| {r['claim_p50_ms']:.1f} | {r['claim_p99_ms']:.1f} | {r['xacts_per_job']:.1f} "
              f"| {r['idle_xacts_per_s']:.1f} | {r['rtt_direct_ms']:.2f} | {fmt(r['rtt_forwarded_ms'], '{:.2f}')} "
              f"| {fmt(r['forward_cpu_pct'])} |")
    base = rows[0]
    for r in rows[1:]:
        print(f"{r['nodes']} nodes vs 1: web jobs/min x{r['jobs_per_min'] / base['jobs_per_min']:.2f}, "
              f"API req/s x{r['api_rps'] / base['api_rps']:.2f}, claim p50 x{r['claim_p50_ms'] / base['claim_p50_ms']:.2f}, "
              f"forwarding adds {r['rtt_forwarded_ms'] - r['rtt_direct_ms']:.2f} ms per round trip and "
              f"{r['forward_cpu_pct']:.1f} % of a core per 30 fps 720p stream ({mbit:.1f} Mbit/s)")


if __name__ == "__main__":
    main()
