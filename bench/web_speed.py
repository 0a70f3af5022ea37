#!/usr/bin/env python3
"""Deterministic web recording speed (see bench/web_speed.sh).

Each case records the rich clock page (`bench/pages/clock.html?rich=1`) for
N seconds of video and prints the real-time factor (video seconds per wall
second), CPU seconds (the recorder and all its children: browser, ffmpeg),
and what the page's barcode says of the video (holds: frames repeating the
previous page frame; jerk). Recorders:

- tapedeck-png, tapedeck-jpeg: `tapedeck record` in deterministic mode,
  capturing PNG (the default) or JPEG q90 (`web.capture_format`);
- playwright: Playwright frame by frame, the way timecut and timesnap do it
  (`page.clock` run one frame forward, `page.screenshot`, PNGs piped to
  ffmpeg; bench/playwright_frames.mjs).

Ratios are against Playwright in the same run.

With `--browsers 1,2,3`, each case is recorded once per count of browsers
rendering it at once (`web.browsers_per_recording`, the CPU budget opened
so the gate grants them all: the split itself is measured), and the
factor is compared to one browser's. Every video is checked: its frame
count and no repeated picture.

With `--batch N`, each case is also recorded N times at once by tapedeck
(as a server's queue runs them when they fit its CPU budget) and once
alone, and the video seconds made per wall second (whole runs) are
compared: the throughput of a queue of deterministic recordings.
"""
import argparse
import functools
import http.server
import json
import os
import re
import resource
import subprocess
import tempfile
import threading
import time

TARGETS = {"1080p30": 1.0, "1080p60": 0.5, "2160p30": 0.2}


def timed(cmd, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout + out.stderr


def stats(tapedeck, video, fps):
    reader = os.path.join(os.path.dirname(tapedeck), "tapedeck-clock-stats")
    return json.loads(subprocess.run([reader, video, "--fps", str(fps)],
                                     check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--cases", default="1080p30,1080p60,2160p30")
    ap.add_argument("--recorders", default="tapedeck-png,tapedeck-jpeg,playwright")
    ap.add_argument("--browsers", default="",
                    help="also record each case by each of these counts of browsers at once, e.g. 1,2,3")
    ap.add_argument("--batch", type=int, default=0,
                    help="also record N at once against one alone (tapedeck, the first capture format in --recorders)")
    a = ap.parse_args()
    pages = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pages")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=pages))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/clock.html?rich=1"
    work = tempfile.mkdtemp(prefix="tapedeck-web-speed-")
    script = os.path.join(work, "wait.json")
    with open(script, "w") as f:
        json.dump([{"type": "wait", "duration_ms": a.seconds * 1000}], f)

    rows, summary = [], []
    for case in a.cases.split(","):
        h = int(case.split("p")[0])
        fps = int(case.split("p")[1])
        w = h * 16 // 9
        rtf = {}
        for rec in a.recorders.split(","):
            out = os.path.join(work, f"{case}-{rec}.mp4")
            if rec.startswith("tapedeck"):
                env = dict(os.environ, TAPEDECK_WEB__CAPTURE_FORMAT=rec.split("-")[1])
                wall, cpu, log = timed([a.tapedeck, "record", url, "-o", out, "--script", script,
                                        "--size", f"{w}x{h}", "--fps", str(fps), "--allow-private"], env)
                m = re.search(r"recorded at ([0-9.]+)x real time", log)
                # The recorder's own figure: the frame loop, without browser start and file finish.
                loop_rtf = float(m.group(1)) if m else None
            else:
                wall, cpu, log = timed(["node", "bench/playwright_frames.mjs", url, out,
                                        str(w), str(h), str(fps), str(a.seconds)])
                loop = json.loads(log.strip().splitlines()[-1])["wall_s"]
                loop_rtf = a.seconds / loop
            s = stats(a.tapedeck, out, fps)
            rtf[rec] = loop_rtf
            rows.append((case, rec, loop_rtf, a.seconds / wall, cpu, s["delivered_fps"], s["holds"],
                         s["jerk"] * 100))
        base = rtf.get("playwright")
        best = max(v for k, v in rtf.items() if k.startswith("tapedeck"))
        part = f"{case}: {best:.2f}x real time"
        if case in TARGETS:
            part += f" (target {TARGETS[case]:.1f}x)"
        if base:
            part += f", x{best / base:.2f} Playwright's {base:.2f}x"
        summary.append(part)

    print(f"| case | recorder | real-time factor (loop) | real-time factor (whole run) | CPU s | delivered fps | holds | jerk | vs Playwright |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, rec, loop_rtf, whole, cpu, dfps, holds, jerk in rows:
        base = next((r[2] for r in rows if r[0] == case and r[1] == "playwright"), None)
        ratio = f"x{loop_rtf / base:.2f}" if base else "-"
        print(f"| {case} | {rec} | {loop_rtf:.2f}x | {whole:.2f}x | {cpu:.1f} | {dfps:.1f} | {holds} | {jerk:.1f} % | {ratio} |")
    if a.browsers:
        print()
        print(f"| case | browsers | real-time factor (loop) | real-time factor (whole run) | CPU s | frames | holds | jerk | vs one browser |")
        print("|---|---|---|---|---|---|---|---|---|")
        for case in a.cases.split(","):
            h = int(case.split("p")[0])
            fps = int(case.split("p")[1])
            w = h * 16 // 9
            one = None
            for n in [int(x) for x in a.browsers.split(",")]:
                out = os.path.join(work, f"{case}-browsers{n}.mp4")
                env = dict(os.environ, TAPEDECK_WEB__BROWSERS_PER_RECORDING=str(n),
                           TAPEDECK_WEB__MAX_CONCURRENT=str(max(n, 2)),
                           TAPEDECK_LIMITS__CPU_BUDGET_CORES="64")
                wall, cpu, log = timed([a.tapedeck, "record", url, "-o", out, "--script", script,
                                        "--size", f"{w}x{h}", "--fps", str(fps), "--allow-private"], env)
                m = re.search(r"recorded at ([0-9.]+)x real time(?: by ([0-9]+) browsers)?", log)
                loop_rtf = float(m.group(1)) if m else 0.0
                used = int(m.group(2)) if m and m.group(2) else 1
                s = stats(a.tapedeck, out, fps)
                one = one or loop_rtf
                whole = s["frames"] == a.seconds * fps and s["holds"] == 0
                print(f"| {case} | {n}{'' if used == n else f' ({used} used)'} | {loop_rtf:.2f}x | {a.seconds / wall:.2f}x "
                      f"| {cpu:.1f} | {s['frames']}{'' if whole else ' NOT WHOLE'} | {s['holds']} | {s['jerk'] * 100:.1f} % "
                      f"| x{loop_rtf / one:.2f} |")
                summary.append(f"{case} by {n} browsers: {loop_rtf:.2f}x")
    if a.batch > 1:
        fmt = next((r.split("-")[1] for r in a.recorders.split(",") if r.startswith("tapedeck-")), "png")
        env = dict(os.environ, TAPEDECK_WEB__CAPTURE_FORMAT=fmt)
        print()
        print(f"| case | at once | wall s | video s per wall s | every file whole (holds 0) | vs one alone |")
        print("|---|---|---|---|---|---|")
        for case in a.cases.split(","):
            h = int(case.split("p")[0])
            fps = int(case.split("p")[1])
            w = h * 16 // 9
            rate = {}
            for n in (1, a.batch):
                outs = [os.path.join(work, f"{case}-batch{n}-{i}.mp4") for i in range(n)]
                t0 = time.monotonic()
                procs = [subprocess.Popen([a.tapedeck, "record", url, "-o", o, "--script", script,
                                           "--size", f"{w}x{h}", "--fps", str(fps), "--allow-private"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for o in outs]
                if any(p.wait() != 0 for p in procs):
                    raise SystemExit(f"{case}: a batch recording failed")
                wall = time.monotonic() - t0
                checked = [stats(a.tapedeck, o, fps) for o in outs]
                whole = all(c["holds"] == 0 and c["frames"] == a.seconds * fps for c in checked)
                rate[n] = n * a.seconds / wall
                ratio = f"x{rate[n] / rate[1]:.2f}"
                print(f"| {case} | {n} | {wall:.1f} | {rate[n]:.2f} | {'yes' if whole else 'NO'} | {ratio} |")
            summary.append(f"{case} batch: {a.batch} at once x{rate[a.batch] / rate[1]:.2f} the throughput of one alone")
    print("; ".join(summary))


if __name__ == "__main__":
    main()
