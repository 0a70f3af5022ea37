#!/usr/bin/env python3
"""tapedeck vs Playwright recordVideo on the clock page (see bench/web.sh).

Smoothness comes from the page's own barcode (`tapedeck-clock-stats`, built from crates/tapedeck-testkit).
Quality: 20 frames of each video are compared (SSIM) with lossless
re-renderings of the same page frames (same clock and counter, by the same
browser binary and rendering flags the recorder used), and divided by the
video's bitrate. tapedeck is capped at Playwright's measured bitrate and run twice: with its
default CRF 23 (row "tapedeck") and with the CRF that spends about
Playwright's bitrate (row "tapedeck=br", quality at equal bitrate).
CPU: user+system seconds of each recorder and all its children.
"""
import argparse
import functools
import http.server
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading


def cpu_run(cmd, **kw):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, out.stdout


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-print_format", "json", path],
                         check=True, capture_output=True, text=True).stdout
    f = json.loads(out)["format"]
    return float(f["duration"]), int(f["size"])


def ssim(video, marks, fps, url, w, h, work, tag):
    """Mean SSIM of 20 frames of `video` against lossless renders of the same page frames."""
    picks = marks[:: max(1, len(marks) // 20)][:20]
    refs = os.path.join(work, f"{tag}-refs.txt")
    with open(refs, "w") as f:
        for i, clock_us, counter in picks:
            f.write(f"{clock_us / 1000:.3f} {counter} {work}/{tag}-ref-{i}.png\n")
    if tag.startswith("tapedeck"):
        # The browser and rendering flags tapedeck records with (media::web::browser).
        renderer = ["/usr/lib/chromium/chromium-headless-shell", "--font-render-hinting=none",
                    "--force-color-profile=srgb", "--hide-scrollbars"]
    else:
        renderer = ["/usr/lib/chromium/chromium"]
    subprocess.run(["node", "bench/render_refs.mjs", url, str(w), str(h), refs, *renderer], check=True)
    sel = "+".join(f"eq(n\\,{i})" for i, _, _ in picks)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-vf", f"fps={fps},select='{sel}'",
                    "-fps_mode", "passthrough", f"{work}/{tag}-got-%03d.png"], check=True)
    total = 0.0
    for k, (i, _, _) in enumerate(picks):
        out = subprocess.run(["ffmpeg", "-v", "info", "-i", f"{work}/{tag}-got-{k + 1:03d}.png",
                              "-i", f"{work}/{tag}-ref-{i}.png", "-lavfi", "ssim", "-f", "null", "-"],
                             capture_output=True, text=True).stderr
        total += float(out.split("All:")[1].split()[0])
    return total / len(picks)


def stats(tapedeck, video, fps):
    reader = os.path.join(os.path.dirname(tapedeck), "tapedeck-clock-stats")
    return json.loads(subprocess.run([reader, video, "--fps", str(fps)],
                                     check=True, capture_output=True, text=True).stdout)


def playwright_env():
    """Playwright records with its own ffmpeg build, which cannot be downloaded
    here; give it Debian's (same VP8 encoder) at the path it looks for."""
    with open("tests/e2e/node_modules/playwright-core/browsers.json") as f:
        rev = next(b["revision"] for b in json.load(f)["browsers"] if b["name"] == "ffmpeg")
    root = os.path.abspath("bench/.playwright")
    exe = os.path.join(root, f"ffmpeg-{rev}", "ffmpeg-linux")
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    if not os.path.exists(exe):
        os.symlink(shutil.which("ffmpeg"), exe)
    return dict(os.environ, PLAYWRIGHT_BROWSERS_PATH=root)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--pages", default="plain,rich",
                    help="clock page variants: plain (flat, as in the tests) and/or rich (detailed, panning)")
    a = ap.parse_args()
    tapedeck = os.path.abspath(a.tapedeck)
    work = tempfile.mkdtemp(prefix="tapedeck-web-bench-")
    pages = os.path.abspath("bench/pages")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=pages)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}/clock.html"
    script = os.path.join(work, "wait.json")
    with open(script, "w") as f:
        json.dump([{"type": "wait", "duration_ms": a.seconds * 1000}], f)
    rows = []
    cases = [(page, w, h, fps) for page in a.pages.split(",")
             for w, h, fps in [(1280, 720, 30), (1920, 1080, 60)]]
    for page, w, h, fps in cases:
        url = base + ("?rich=1" if page == "rich" else "")
        label = f"{h}p{fps}" + ("" if page == "plain" else f"-{page}")
        res = {}
        cpu, out = cpu_run(["node", "bench/playwright_record.mjs", url, work, str(w), str(h), str(a.seconds)],
                           env=playwright_env())
        pw = out.strip().splitlines()[-1]
        dur, size = probe(pw)
        pw_kbps = size * 8 / dur / 1000
        res["playwright"] = (pw, cpu, dur, size)
        env = dict(os.environ, TAPEDECK_LOG="error")

        def tapedeck_run(tag, crf):
            out = os.path.join(work, f"{tag}-{label}.mp4")
            cpu, _ = cpu_run([tapedeck, "record", url, "-o", out, "--script", script, "--size", f"{w}x{h}",
                              "--fps", str(fps), "--allow-private", "--bitrate-kbps", str(int(pw_kbps))],
                             env=dict(env, TAPEDECK_ENCODER__CRF=str(crf)))
            dur, size = probe(out)
            return out, cpu, dur, size

        # Defaults (CRF 23 capped at Playwright's bitrate), then the CRF that
        # spends about Playwright's bitrate, for quality at equal bitrate.
        res["tapedeck"] = tapedeck_run("tapedeck", 23)
        for crf in (18, 14, 10, 6):
            run = tapedeck_run(f"tapedeck-crf{crf}", crf)
            if run[3] * 8 / run[2] / 1000 >= 0.9 * pw_kbps or crf == 6:
                res[f"tapedeck=br"] = run
                break
        for name, (path, cpu, dur, size) in res.items():
            s = stats(tapedeck, path, fps)
            mbps = size * 8 / dur / 1e6
            q = ssim(path, s["marks"], fps, url, w, h, work, f"{name}-{label}")
            rows.append({"size": label, "recorder": name, "fps": s["delivered_fps"], "holds": s["holds"],
                         "jerk": s["jerk"], "unreadable": s["unreadable"], "ssim": q, "mbps": mbps,
                         "ssim_per_mbps": q / mbps, "cpu_s": cpu, "video_s": dur})
    print(f"{'size':13} {'recorder':11} {'fps':>6} {'holds':>6} {'jerk':>6} {'unread':>6} {'SSIM':>7} {'Mbit/s':>7} {'SSIM/Mb':>8} {'CPU s':>7}")
    for r in rows:
        print(f"{r['size']:13} {r['recorder']:11} {r['fps']:6.1f} {r['holds']:6d} {r['jerk']:6.1%} {r['unreadable']:6d} "
              f"{r['ssim']:7.4f} {r['mbps']:7.2f} {r['ssim_per_mbps']:8.3f} {r['cpu_s']:7.1f}")
    ratios = []
    for size in dict.fromkeys(r["size"] for r in rows):
        t = next(r for r in rows if r["size"] == size and r["recorder"] == "tapedeck")
        e = next(r for r in rows if r["size"] == size and r["recorder"] == "tapedeck=br")
        p = next(r for r in rows if r["size"] == size and r["recorder"] == "playwright")
        ratios.append(f"{size}: delivered fps x{t['fps'] / p['fps']:.2f}, SSIM/Mbit x{t['ssim_per_mbps'] / p['ssim_per_mbps']:.2f}, "
                      f"SSIM at {e['mbps'] / p['mbps']:.2f}x the bitrate {e['ssim']:.4f} vs {p['ssim']:.4f}, "
                      f"CPU x{t['cpu_s'] / p['cpu_s']:.2f}")
    srv.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    print("tapedeck vs playwright: " + "; ".join(ratios))


if __name__ == "__main__":
    sys.exit(main())
