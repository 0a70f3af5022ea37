"""The peer of bench/frames_many.py: one camera stream recorded with
OpenCV's VideoWriter (mp4v, 30 fps). Pictures arrive at INPUT_FPS (read
from DIR, paced by the clock, as a camera page sends them); each is decoded
and written 30 / INPUT_FPS times, as a CFR writer must.
Usage: opencv_camera.py DIR INPUT_FPS SECONDS OUT.mp4
"""
import os
import sys
import time

import cv2
import numpy as np

src, rate, seconds, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cv2.setNumThreads(1)
files = sorted(os.listdir(src))
repeat = round(30 / rate)
writer = None
t0 = time.monotonic()
for k in range(seconds * rate):
    time.sleep(max(0.0, t0 + k / rate - time.monotonic()))
    with open(os.path.join(src, files[k % len(files)]), "rb") as f:
        data = f.read()
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if writer is None:
        h, w = frame.shape[:2]
        writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for _ in range(repeat):
        writer.write(frame)
writer.release()
