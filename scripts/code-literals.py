#!/usr/bin/env python3
"""Error codes spelled as strings in Rust sources outside
tapedeck-core's codes.rs (test modules left out): each line, and the
count. Codes are values (`tapedeck_core::Code`); a string here is a code
that skipped the catalogue, or a word that only looks like one."""
import glob
import os
import re

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
codes_rs = os.path.join(root, "crates/tapedeck-core/src/codes.rs")
known = set(re.findall(r'= "([a-z_]+)", \d+,', open(codes_rs).read()))
n = 0
for f in sorted(glob.glob(os.path.join(root, "crates/*/src/**/*.rs"), recursive=True)):
    if os.path.samefile(f, codes_rs):
        continue
    text = open(f).read()
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    for i, line in enumerate(text.split("\n"), 1):
        if line.strip().startswith("//"):
            continue
        for m in re.finditer(r'"([a-z_]+)"', line):
            if m.group(1) in known:
                n += 1
                print(f"{os.path.relpath(f, root)}:{i}: {line.strip()}")
print(f"{n} code literals")
