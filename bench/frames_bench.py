"""Runs tapedeck and OpenCV on the same frames and prints a comparison.

CPU is measured as RUSAGE_CHILDREN of this script around each run, so it
includes every process a recorder starts (tapedeck's ffmpeg too).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd):
    before, t0 = cpu_children(), time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return cpu_children() - before, time.monotonic() - t0


def ssim(video, frames_dir, rate):
    """SSIM of `video` against the source frames held to 30 fps, paired by frame index."""
    cmd = ["ffmpeg", "-v", "info", "-nostats", "-i", video, "-framerate", str(rate),
           "-i", os.path.join(frames_dir, "f%04d.jpg"),
           "-lavfi", "[1:v]fps=30,format=yuv420p,setpts=N/(30*TB)[ref];[0:v]format=yuv420p,setpts=N/(30*TB)[v];[v][ref]ssim",
           "-f", "null", "-"]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    return float(re.search(r"All:([0-9.]+)", err).group(1))


def probe_frames(video):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", video],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tapedeck", required=True)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--preset", default="veryfast", help="tapedeck encoder.x264_preset")
    ap.add_argument("--crf", type=int, default=23, help="tapedeck encoder.crf")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tapedeck-bench-")
    frames = os.path.join(work, "frames")
    os.makedirs(frames)
    # Camera-like content: moving test pattern with mild sensor noise, 720p, JPEG quality ~90.
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                    "-vf", "noise=alls=2:allf=t", "-frames:v", str(args.frames), "-q:v", "3",
                    os.path.join(frames, "f%04d.jpg")], check=True)
    env = dict(os.environ, TAPEDECK_ENCODER__X264_PRESET=args.preset, TAPEDECK_ENCODER__CRF=str(args.crf))
    rows = []
    for rate in (30, 5):
        video_s = args.frames / rate
        out_cv = os.path.join(work, f"opencv-{rate}.mp4")
        cpu_cv, wall_cv = run([sys.executable, os.path.join(HERE, "opencv_writer.py"), frames, str(rate), out_cv])
        out_td = os.path.join(work, f"tapedeck-{rate}.mp4")
        before = cpu_children()
        subprocess.run([args.tapedeck, "encode-frames", "--dir", frames, "--input-fps", str(rate),
                        "--fps", "30", "-o", out_td], check=True, stdout=subprocess.DEVNULL, env=env)
        cpu_td = cpu_children() - before
        for name, out, cpu in (("opencv mp4v", out_cv, cpu_cv), (f"tapedeck x264 {args.preset} crf{args.crf}", out_td, cpu_td)):
            rows.append({
                "input_fps": rate, "recorder": name, "video_s": video_s,
                "frames": probe_frames(out), "cpu_per_video_s": cpu / video_s,
                "bytes": os.path.getsize(out), "ssim": ssim(out, frames, rate),
            })
    print(f"{'input':>6} {'recorder':<28} {'frames':>6} {'CPU-s/video-s':>14} {'MB':>8} {'SSIM':>8}")
    for r in rows:
        print(f"{r['input_fps']:>4}fps {r['recorder']:<28} {r['frames']:>6} {r['cpu_per_video_s']:>14.4f} "
              f"{r['bytes'] / 1e6:>8.2f} {r['ssim']:>8.4f}")
    ratios = {}
    for rate in (30, 5):
        cv, td = [r for r in rows if r["input_fps"] == rate]
        ratios[rate] = (td["cpu_per_video_s"] / cv["cpu_per_video_s"], td["bytes"] / cv["bytes"], td["ssim"] - cv["ssim"])
        print(f"{rate:>4}fps tapedeck/opencv: CPU x{ratios[rate][0]:.3f}, bytes x{ratios[rate][1]:.3f}, "
              f"SSIM {ratios[rate][2]:+.4f}")
    print(json.dumps({"rows": rows}), file=open(os.path.join(work, "result.json"), "w"))
    print(f"key ratio: tapedeck CPU per second of video vs OpenCV, 5 fps in: x{ratios[5][0]:.3f} "
          f"(target <= 0.167); 30 fps in: x{ratios[30][0]:.3f} (target <= 1), bytes x{ratios[30][1]:.3f} (target <= 0.333)")


if __name__ == "__main__":
    main()
