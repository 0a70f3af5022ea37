"""The peer: OpenCV's VideoWriter (mp4v) writing JPEG frames at 30 fps.

Frames arriving at a lower rate are written repeatedly (30 / rate times each),
as a CFR writer must. Usage: opencv_writer.py DIR INPUT_FPS OUT.mp4
"""
import os
import sys

import cv2

src, rate, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
files = sorted(os.listdir(src))
repeat = round(30 / rate)
first = cv2.imread(os.path.join(src, files[0]))
h, w = first.shape[:2]
writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
for name in files:
    frame = cv2.imread(os.path.join(src, name))
    for _ in range(repeat):
        writer.write(frame)
writer.release()
