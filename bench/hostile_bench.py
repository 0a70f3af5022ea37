#!/usr/bin/env python3
"""Drives bench/hostile.sh: everyone at once on one tapedeck server, with a
hostile client per way of harming others (issue 22), for --seconds.

Users (N of them) each loop through a frames recording (10 s of 320x240
JPEG at 10 fps), an upload (a 5 s VP8/Opus WebM in one tus request), a room
recording (one WebRTC publisher from tapedeck-loadgen; the recording starts
the instant the publisher is connected, every other time before it joins)
and a web recording (a local page, deterministic, 6 s at 640x360x24), with
an event socket open the whole time. Every recording is checked exactly:
frames in = frames sent, none dropped, the file's frame count (ffprobe)
right; an upload's SHA-256 and frames equal the file sent; a room's video
track holds what the publisher sent after the start; its events are its
own.

Hostile clients, at the same time:
  whip_hog     a guest of user 1's room posts WHIP offers that never
               connect, again and again (expect 429 too_many_connecting)
  own_address  web recordings of the server's own addresses, loopback and
               cloud metadata (expect 422 or failed source_blocked)
  junk_uploads 900 KB of random bytes as uploads (expect failed
               invalid_media and nothing left in work/)
  empty_uploads the guest creates uploads and never sends a byte (expect
               429 past limits.max_uploads_per_guest; user 1 never refused)
  slowloris    200 connections sending half a request, reopened as closed
  sockets      20 event sockets for one user (expect 16 and 429s), and 4
               raw sockets that never read nor answer a ping
  huge_pictures an 811-byte WebM declaring 16000x16000 pictures
               (expect failed invalid_media naming the size)
  misc         bad SDP, a JSON body over the limit, rooms created until
               429 too_many_rooms

A monitor samples every 10 s: tapedeck's RSS and open files, the RSS of
its children, the bytes in work/, and /healthz's answer time. Prints a
report and exits 1 when a user's recording was not exact or a hostile
client got an answer it should not have.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

# --- plumbing ---------------------------------------------------------------


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, token, method, path, body=None, headers=None, raw=None, timeout=60):
        """(status, JSON or text, headers) of a request; never raises on HTTP errors."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, parse(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, parse(e.read()), e.headers

    async def a(self, *args, **kw):
        return await asyncio.to_thread(self.call, *args, **kw)


def code(r):
    """The stable code of an API error body (`{"error": {"code", "message"}}`)."""
    return ((r or {}).get("error") or {}).get("code") if isinstance(r, dict) else None


def parse(b):
    try:
        return json.loads(b) if b else None
    except ValueError:
        return b.decode(errors="replace")


def ffprobe_frames(path, stream="v:0"):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", path],
        capture_output=True, text=True).stdout.strip()
    try:
        return int(out.split()[0].strip(","))
    except (ValueError, IndexError):
        return -1


def tree(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


class Tally:
    """What happened, by kind: counts of outcomes and the first few problems."""

    def __init__(self):
        self.counts = {}
        self.problems = []

    def add(self, kind, outcome, problem=None):
        self.counts.setdefault(kind, {}).setdefault(outcome, 0)
        self.counts[kind][outcome] += 1
        if problem:
            self.problems.append(f"{kind}: {problem}")


T = Tally()
STOP = [0.0]


def running():
    return time.monotonic() < STOP[0]


async def wait_done(api, token, rid, limit=600):
    for _ in range(limit * 2):
        st, r, _ = await api.a(token, "GET", f"/v1/recordings/{rid}")
        if st == 200 and r["status"] in ("completed", "failed", "cancelled"):
            return r
        await asyncio.sleep(0.5)
    return {"status": "timeout", "id": rid}


async def create(api, token, body, user_kind):
    """POST /v1/recordings; a server_busy 429 is retried (and counted): the
    CPU budget is not a harm a hostile client did."""
    for _ in range(120):
        st, r, _ = await api.a(token, "POST", "/v1/recordings", body)
        if st == 429 and code(r) == "server_busy":
            T.add(user_kind, "server_busy_retry")
            await asyncio.sleep(2)
            continue
        return st, r
    return st, r


# --- users ------------------------------------------------------------------


async def frames_once(ctx, u):
    api, token = ctx.api, u["key"]
    st, rec = await create(api, token, {"source": {"kind": "frames", "input_fps": 10}, "preset": "low",
                                        "width": 320, "height": 240, "fps": 10, "format": "mp4"}, "frames")
    if st != 201:
        T.add("frames", f"refused {st}", f"{u['name']}: {st} {rec}")
        return
    u["ids"].add(rec["id"])
    url = ctx.api.base.replace("http", "ws") + f"/v1/recordings/{rec['id']}/frames"
    n = 100
    async with websockets.connect(url, additional_headers={"Authorization": "Bearer " + token},
                                  max_size=None, open_timeout=60) as ws:
        t0 = time.monotonic()
        for k in range(n):
            await asyncio.sleep(max(0.0, t0 + k / 10 - time.monotonic()))
            await ws.send(json.dumps({"pts_ms": k * 100}))
            await ws.send(ctx.jpegs[k % len(ctx.jpegs)])
    await api.a(token, "POST", f"/v1/recordings/{rec['id']}/stop", {})
    r = await wait_done(api, token, rec["id"])
    s = r.get("stats", {})
    media = r.get("media") or {}
    ok = (r["status"] == "completed" and s.get("frames_in") == n and s.get("frames_dropped") == 0
          and abs((media.get("frames") or 0) - n) <= 1)
    T.add("frames", "exact" if ok else "WRONG",
          None if ok else f"{rec['id']}: {r['status']} in={s.get('frames_in')} "
                          f"dropped={s.get('frames_dropped')} frames={media.get('frames')} {r.get('error')}")


async def upload_once(ctx, u):
    api, token = ctx.api, u["key"]
    body = ctx.upload
    st, r, h = await api.a(token, "POST", "/v1/uploads", raw=body, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)),
        "Upload-Metadata": "filename " + base64.b64encode(b"clip.webm").decode(),
        "Content-Type": "application/offset+octet-stream"})
    if st != 201:
        T.add("upload", f"refused {st}", f"{u['name']}: {st} {r}")
        return
    rid = h["Location"].rsplit("/", 1)[1]
    u["ids"].add(rid)
    r = await wait_done(api, token, rid)
    media = r.get("media") or {}
    src = r.get("source") or {}
    ok = (r["status"] == "completed" and src.get("sha256") == ctx.upload_sha
          and media.get("frames") == ctx.upload_frames)
    T.add("upload", "exact" if ok else "WRONG",
          None if ok else f"{rid}: {r['status']} sha={src.get('sha256')} frames={media.get('frames')} {r.get('error')}")


async def room_once(ctx, u, after_connect):
    api, token = ctx.api, u["key"]
    st, room, _ = await api.a(token, "POST", "/v1/rooms", {"name": f"{u['name']} call", "max_participants": 4})
    if st != 201:
        T.add("room", f"refused {st}", f"{u['name']} room: {st} {room}")
        return
    _, inv, _ = await api.a(token, "POST", f"/v1/rooms/{room['id']}/invites", {"name": "pub"})
    rec = None
    if not after_connect:
        st, rec = await create(api, token, {"source": {"kind": "room", "room": room["id"]}}, "room")
    whip = f"{api.base}/v1/rooms/{room['id']}/whip"
    proc = await asyncio.create_subprocess_exec(
        ctx.loadgen, "--whip", whip, "--token", inv["token"], "--video", ctx.ivf, "--audio", ctx.opus,
        "--seconds", "12", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    if after_connect:
        # The race of issue 22: the recording starts the instant GET shows the publisher connected.
        for _ in range(400):
            _, r, _ = await api.a(token, "GET", f"/v1/rooms/{room['id']}")
            if any(p.get("connected") for p in (r or {}).get("participants", [])):
                break
            await asyncio.sleep(0.025)
        st, rec = await create(api, token, {"source": {"kind": "room", "room": room["id"]}}, "room")
    out, err = await proc.communicate()
    if st != 201:
        T.add("room", f"refused {st}", f"{u['name']}: {st} {rec}")
        await api.a(token, "DELETE", f"/v1/rooms/{room['id']}")
        return
    u["ids"].add(rec["id"])
    await api.a(token, "POST", f"/v1/recordings/{rec['id']}/stop", {})
    r = await wait_done(api, token, rec["id"])
    await api.a(token, "DELETE", f"/v1/rooms/{room['id']}")
    try:
        sent = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        T.add("room", "loadgen_failed", err.decode()[-300:])
        return
    video = [t for t in r.get("tracks", []) if t["kind"] == "video"]
    frames = -1
    if video:
        path = os.path.join(ctx.data, "media", "recordings", r["id"], "tracks", f"{video[0]['id']}.webm")
        frames = ffprobe_frames(path)
    # Started before: every frame but those before the first keyframe (at
    # most a second: the loadgen answers a keyframe request at once). Started
    # at the instant of connecting: the frames sent before it are not the
    # recording's, up to 1.5 s.
    slack = 45 if after_connect else 30
    ok = r["status"] == "completed" and frames >= sent["video_frames"] - slack
    kind = "room_at_connect" if after_connect else "room_before"
    T.add(kind, "exact" if ok else "WRONG",
          None if ok else f"{r['id']}: {r['status']} video frames {frames} of {sent['video_frames']} sent {r.get('error')}")


async def web_once(ctx, u):
    api, token = ctx.api, u["key"]
    st, rec = await create(api, token, {
        "source": {"kind": "web", "url": ctx.page, "auto": {"duration_s": 6}, "viewport": "640x360"},
        "preset": "low", "width": 640, "height": 360, "fps": 24, "format": "mp4"}, "web")
    if st != 201:
        T.add("web", f"refused {st}", f"{u['name']}: {st} {rec}")
        return
    u["ids"].add(rec["id"])
    r = await wait_done(api, token, rec["id"], limit=900)
    media = r.get("media") or {}
    d = media.get("duration_s") or 0
    ok = (r["status"] == "completed" and d >= 5.9
          and abs((media.get("frames") or 0) - round(d * 24)) <= 1)
    T.add("web", "exact" if ok else "WRONG",
          None if ok else f"{rec['id']}: {r['status']} duration={d} frames={media.get('frames')} {r.get('error')}")


async def events(ctx, u):
    url = ctx.api.base.replace("http", "ws") + "/v1/events"
    try:
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer " + u["key"]}) as ws:
            while not u["done"]:
                try:
                    m = json.loads(await asyncio.wait_for(ws.recv(), timeout=1))
                except asyncio.TimeoutError:
                    continue
                u["events"] += 1
                rid = (m.get("recording") or {}).get("id")
                if rid:
                    u["event_ids"].add(rid)
    except Exception as e:  # noqa: BLE001 - any end before the run's is a problem
        T.add("events", "socket_ended", f"{u['name']}: {e!r}")


async def user(ctx, u, i):
    ev = asyncio.create_task(events(ctx, u))
    await asyncio.sleep(i * 3)
    n = 0
    while running():
        step = n % 4
        try:
            if step == 0:
                await frames_once(ctx, u)
            elif step == 1:
                await upload_once(ctx, u)
            elif step == 2:
                await room_once(ctx, u, after_connect=(n // 4) % 2 == 0)
            else:
                await web_once(ctx, u)
        except Exception as e:  # noqa: BLE001
            T.add(["frames", "upload", "room", "web"][step], "ERROR", f"{u['name']}: {e!r}")
        n += 1
    await asyncio.sleep(3)  # the last events
    u["done"] = True
    await ev


# --- hostile clients ----------------------------------------------------------


def expect(kind, ok, what):
    T.add(kind, "as_expected" if ok else "UNEXPECTED", None if ok else what)


async def whip_hog(ctx):
    api, token = ctx.api, ctx.guest
    while running():
        got = []
        for _ in range(6):
            st, r, _ = await api.a(token, "POST", f"/v1/rooms/{ctx.guest_room}/whip", raw=ctx.dead_offer.encode(),
                                   headers={"Content-Type": "application/sdp"})
            got.append(st if st != 429 else code(r))
        # 4 held (some may have expired meanwhile), the rest refused.
        expect("whip_hog", got.count(201) <= 4 and "too_many_connecting" in got, f"answers {got}")
        await asyncio.sleep(3)


async def own_address(ctx):
    targets = [f"http://{a}:{ctx.port}/healthz" for a in ctx.own] + [
        f"http://127.0.0.1:{ctx.port}/metrics", "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:%d/" % ctx.port]
    while running():
        for t in targets:
            st, r = await create(ctx.api, ctx.mallory, {"source": {"kind": "web", "url": t, "auto": {"duration_s": 2}},
                                                        "preset": "low"}, "own_address")
            if st == 201:
                r = await wait_done(ctx.api, ctx.mallory, r["id"])
                ok = r["status"] == "failed" and (r.get("error") or {}).get("code") == "source_blocked"
            else:
                ok = st in (400, 422)
            expect("own_address", ok, f"{t}: {st} {r if st != 201 else r.get('error')}")
        await asyncio.sleep(5)


async def upload_bytes(ctx, token, body):
    st, r, h = await ctx.api.a(token, "POST", "/v1/uploads", raw=body, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)),
        "Upload-Metadata": "filename " + base64.b64encode(b"x.webm").decode(),
        "Content-Type": "application/offset+octet-stream"})
    if st != 201:
        return st, r
    return st, await wait_done(ctx.api, token, h["Location"].rsplit("/", 1)[1])


async def junk_uploads(ctx):
    while running():
        st, r = await upload_bytes(ctx, ctx.mallory, os.urandom(900 * 1024))
        ok = st == 201 and r["status"] == "failed" and r["error"]["code"] == "invalid_media"
        expect("junk_uploads", ok, f"{st} {r.get('status') if isinstance(r, dict) else r}")
        await asyncio.sleep(2)


async def huge_pictures(ctx):
    while running():
        st, r = await upload_bytes(ctx, ctx.mallory, ctx.huge)
        ok = (st == 201 and r["status"] == "failed" and r["error"]["code"] == "invalid_media"
              and "16000x16000" in r["error"]["message"])
        expect("huge_pictures", ok, f"{st} {r.get('error') if isinstance(r, dict) else r}")
        await asyncio.sleep(5)


async def empty_uploads(ctx):
    while running():
        got = []
        for _ in range(4):
            st, r, _ = await ctx.api.a(ctx.guest, "POST", "/v1/uploads", headers={
                "Tus-Resumable": "1.0.0", "Upload-Length": "1000000",
                "Upload-Metadata": "filename " + base64.b64encode(b"e.webm").decode() + ",room "
                + base64.b64encode(ctx.guest_room.encode()).decode()})
            got.append(st if st != 429 else code(r))
        expect("empty_uploads", got.count(201) <= 2 and got[-1] != 201, f"answers {got}")
        await asyncio.sleep(10)


async def slowloris(ctx):
    conns = []
    while running():
        while len(conns) < 200:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", ctx.port)
                w.write(b"GET /v1/recordings HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                conns.append(w)
                T.add("slowloris", "opened")
            except OSError:
                T.add("slowloris", "connect_failed")
                break
        await asyncio.sleep(2)
        live = []
        for w in conns:
            try:
                w.write(b"a")
                await w.drain()
                live.append(w)
            except (ConnectionError, OSError):
                T.add("slowloris", "closed_by_server")
        conns = live
    for w in conns:
        w.close()


async def sockets(ctx):
    url = ctx.api.base.replace("http", "ws") + "/v1/events"
    held, refused = [], 0
    for _ in range(20):
        try:
            held.append(await websockets.connect(url, additional_headers={"Authorization": "Bearer " + ctx.mallory}))
        except websockets.exceptions.InvalidStatus as e:
            refused += 1 if e.response.status_code == 429 else 0
    expect("sockets", len(held) == 16 and refused == 4, f"{len(held)} held, {refused} refused")
    # Raw sockets that never read nor answer a ping: the server drops them.
    raws = []
    for _ in range(4):
        r, w = await asyncio.open_connection("127.0.0.1", ctx.port)
        key = base64.b64encode(os.urandom(16)).decode()
        w.write((f"GET /v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                 f"Authorization: Bearer {ctx.host_key}\r\n\r\n").encode())
        raws.append((r, w, time.monotonic()))
    while running():
        await asyncio.sleep(5)
        for r, w, t0 in list(raws):
            if r.at_eof() or w.is_closing():
                raws.remove((r, w, t0))
                T.add("sockets", f"silent_closed_after_{int((time.monotonic() - t0) // 10 * 10)}s")
            else:
                # Never read: but peek whether the server closed it.
                try:
                    await asyncio.wait_for(r.read(65536), timeout=0.01)
                except asyncio.TimeoutError:
                    pass
    for ws in held:
        await ws.close()


async def misc(ctx):
    api, token = ctx.api, ctx.mallory
    rooms = 0
    while running():
        st, r, _ = await api.a(ctx.guest2, "POST", f"/v1/rooms/{ctx.guest_room}/whip",
                               raw=b"v=0\r\nm=video 9 RTP/AVP 96\r\nnonsense", headers={"Content-Type": "application/sdp"})
        expect("bad_sdp", st == 400 and "0x" not in json.dumps(r), f"{st} {r}")
        st, r, _ = await api.a(token, "POST", "/v1/recordings", raw=b"{\"a\":\"" + b"x" * (2 << 20) + b"\"}",
                               headers={"Content-Type": "application/json"})
        expect("json_too_large", st == 413 and code(r) == "too_large", f"{st} {str(r)[:200]}")
        st, r, _ = await api.a(token, "POST", "/v1/rooms", {"name": "spam"})
        if st == 201:
            rooms += 1
        else:
            expect("room_spam", st == 429 and code(r) == "too_many_rooms" and rooms == 100, f"{st} {r} after {rooms}")
        await asyncio.sleep(0.5)


# --- monitor and main -----------------------------------------------------------


async def monitor(ctx, samples):
    while running():
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(ctx.api.base + "/healthz", timeout=10) as r:
                r.read()
            health_ms = (time.monotonic() - t0) * 1000
        except OSError:
            health_ms = None
        pids = tree(ctx.pid)
        try:
            fds = len(os.listdir(f"/proc/{ctx.pid}/fd"))
        except OSError:
            fds = -1
        samples.append({
            "t": time.monotonic() - ctx.t0, "rss_mb": rss_kb(ctx.pid) / 1024,
            "children_mb": sum(rss_kb(p) for p in pids[1:]) / 1024, "fds": fds,
            "work_mb": dir_bytes(os.path.join(ctx.data, "work")) / 1e6, "health_ms": health_ms})
        await asyncio.sleep(10)


class Ctx:
    pass


def setup(args):
    ctx = Ctx()
    ctx.data, ctx.port, ctx.pid = args.data, args.port, args.pid
    ctx.api = Api(f"http://127.0.0.1:{args.port}")
    ctx.loadgen, ctx.ivf, ctx.opus, ctx.page = args.loadgen, args.ivf, args.opus, args.page
    with open(args.upload, "rb") as f:
        ctx.upload = f.read()
    ctx.upload_sha = hashlib.sha256(ctx.upload).hexdigest()
    ctx.upload_frames = ffprobe_frames(args.upload)
    with open(args.huge, "rb") as f:
        ctx.huge = f.read()
    ctx.jpegs = []
    for name in sorted(os.listdir(args.jpegs)):
        with open(os.path.join(args.jpegs, name), "rb") as f:
            ctx.jpegs.append(f.read())
    ctx.dead_offer = subprocess.run([args.loadgen, "--dead-offer"], capture_output=True, text=True,
                                    check=True).stdout
    ctx.own = [a for a in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
               if ":" not in a][:2]
    keys = {}
    for line in open(args.keys):
        name, key = line.split()
        keys[name] = key
    ctx.users = [{"name": n, "key": k, "ids": set(), "events": 0, "event_ids": set(),
                  "done": False}
                 for n, k in keys.items() if n.startswith("user")]
    ctx.mallory = keys["mallory"]
    host = ctx.users[0]
    ctx.host_key = host["key"]
    st, room, _ = ctx.api.call(host["key"], "POST", "/v1/rooms", {"name": "guests", "max_participants": 8})
    ctx.guest_room = room["id"]
    st, inv, _ = ctx.api.call(host["key"], "POST", f"/v1/rooms/{room['id']}/invites", {"name": "mallory-guest"})
    ctx.guest = inv["token"]
    # Another guest for bad SDP: the first one's sessions are at their limit.
    st, inv, _ = ctx.api.call(host["key"], "POST", f"/v1/rooms/{room['id']}/invites", {"name": "mallory-sdp"})
    ctx.guest2 = inv["token"]
    return ctx


async def run(ctx, seconds):
    ctx.t0 = time.monotonic()
    STOP[0] = ctx.t0 + seconds
    samples = []
    tasks = [asyncio.create_task(monitor(ctx, samples))]
    tasks += [asyncio.create_task(user(ctx, u, i)) for i, u in enumerate(ctx.users)]
    tasks += [asyncio.create_task(f(ctx)) for f in
              (whip_hog, own_address, junk_uploads, empty_uploads, slowloris, sockets, huge_pictures, misc)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            T.add("client", "CRASHED", repr(r))
    return samples


def main():
    ap = argparse.ArgumentParser()
    for a in ("data", "keys", "loadgen", "ivf", "opus", "page", "upload", "huge", "jpegs"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--seconds", type=int, default=600)
    args = ap.parse_args()
    ctx = setup(args)
    samples = asyncio.run(run(ctx, args.seconds))

    # Events: each user saw only their own recordings, and saw them. A
    # guest's uploads into user 1's room are user 1's (filed under the host).
    for u in ctx.users:
        foreign = {i for i in u["event_ids"] - u["ids"]
                   if ctx.api.call(u["key"], "GET", f"/v1/recordings/{i}")[0] != 200}
        missing = u["ids"] - u["event_ids"]
        ok = not foreign and not missing
        T.add("events", "own_only" if ok else "WRONG",
              None if ok else f"{u['name']}: {len(foreign)} foreign, {len(missing)} of own missing")

    print(f"# {args.seconds} s, {len(ctx.users)} users and 8 hostile clients")
    print("| kind | outcomes |")
    print("|---|---|")
    for kind, c in T.counts.items():
        print(f"| {kind} | " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) + " |")
    first = [s for s in samples if s["t"] < 70]
    last = [s for s in samples if s["t"] > args.seconds - 70]

    def med(xs, k):
        v = [x[k] for x in xs if x[k] is not None]
        return statistics.median(v) if v else float("nan")

    print()
    print("| sample | first minute (median) | last minute (median) | max over the run |")
    print("|---|---|---|---|")
    for k, label in (("rss_mb", "tapedeck RSS, MB"), ("fds", "tapedeck open files"),
                     ("children_mb", "children's RSS, MB"), ("work_mb", "work/, MB"),
                     ("health_ms", "/healthz, ms")):
        mx = max((s[k] for s in samples if s[k] is not None), default=float("nan"))
        print(f"| {label} | {med(first, k):.1f} | {med(last, k):.1f} | {mx:.1f} |")
    print("\nminute by minute (the last sample of each):")
    print("| minute | tapedeck RSS, MB | open files | work/, MB |")
    print("|---|---|---|---|")
    for m in range(int(args.seconds // 60) + 1):
        inside = [s for s in samples if m * 60 <= s["t"] < (m + 1) * 60]
        if inside:
            s = inside[-1]
            print(f"| {m + 1} | {s['rss_mb']:.1f} | {s['fds']} | {s['work_mb']:.1f} |")
    down = sum(1 for s in samples if s["health_ms"] is None)
    print(f"\n/healthz unanswered in {down} of {len(samples)} samples")
    shown = {}
    for p in T.problems:
        kind = p.split(":", 1)[0]
        shown[kind] = shown.get(kind, 0) + 1
        if shown[kind] <= 3:
            print("PROBLEM", p)
    for kind, n in shown.items():
        if n > 3:
            print(f"PROBLEM {kind}: {n - 3} more")
    bad = any(k in ("WRONG", "UNEXPECTED", "ERROR", "CRASHED") or k.startswith("refused")
              for c in T.counts.values() for k in c) or down
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
