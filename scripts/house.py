#!/usr/bin/env python3
"""The shape of the code, for the house issue's before/after table.

Prints, per crate: the files that import each other in a circle (strongly
connected components of the graph of `crate::`/`super::` references between
files), the biggest circle's files, files over 600 lines, and
`match` arms on a source kind outside `source/`.

    python3 scripts/house.py            # the table
    python3 scripts/house.py --circle   # and the biggest circle's files
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts and parts[0] == "bin":
                continue
            out[tuple(parts)] = os.path.join(dirpath, f)
    return out


def strip_tests(text):
    """The file without its `#[cfg(test)] mod tests { ... }` block."""
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
USE_GROUP = re.compile(r"use\s+(crate|super)((?:::\w+)*)::\{([^;]*)\};", re.S)


def refs(mod, text, known):
    """Modules this file's code names."""
    found = set()

    def resolve(head, tail):
        base = () if head == "crate" else mod[:-1] if not is_dir(mod) else mod[:-1]
        segs = [s for s in tail.split("::") if s]
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        path = tuple(base) + tuple(segs)
        # The longest prefix that is a module.
        for n in range(len(path), 0, -1):
            if path[:n] in known:
                return path[:n]
        return None

    def is_dir(m):
        return known.get(m, "").endswith("mod.rs")

    for head, tail in PATH.findall(text):
        if head == "super":
            base = mod[:-1] if not is_dir(mod) else mod[:-1]
            # `super` from a/b.rs is a; from a/b/mod.rs is a as well.
            path = resolve_super(mod, tail, known, is_dir)
        else:
            path = resolve(head, tail)
        if path and path != mod:
            found.add(path)
    for head, prefix, group in USE_GROUP.findall(text):
        for item in re.split(r",\s*", group):
            item = item.strip().split(" as ")[0].split("::{")[0]
            if not item or item == "self":
                continue
            tail = prefix + "::" + item
            path = resolve_super(mod, tail, known, is_dir) if head == "super" else resolve("crate", tail)
            if path and path != mod:
                found.add(path)
    return found


def resolve_super(mod, tail, known, is_dir):
    base = mod[:-1]
    segs = [s for s in tail.split("::") if s]
    while segs and segs[0] == "super":
        base = base[:-1]
        segs = segs[1:]
    path = tuple(base) + tuple(segs)
    for n in range(len(path), 0, -1):
        if path[:n] in known:
            return path[:n]
    return None


def sccs(graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


KIND_ARM = re.compile(r"SourceKind::\w+\s*(\|[^=]*)?=>")


def main():
    show = "--circle" in sys.argv
    crates = os.path.join(ROOT, "crates")
    print(f"{'crate':<18}{'files':>6}{'circles':>8}{'biggest':>8}{'>600':>6}{'kind arms':>10}")
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        known = modules(src)
        graph = defaultdict(set)
        long_files, arms = [], 0
        for mod, path in known.items():
            text = open(path).read()
            if text.count("\n") > 600:
                long_files.append(os.path.relpath(path, ROOT))
            body = strip_tests(text)
            graph[mod] |= refs(mod, body, known)
            in_source = "source" in mod
            if not in_source:
                arms += len(KIND_ARM.findall(body))
        comps = [c for c in sccs(graph) if len(c) > 1]
        biggest = max(comps, key=len, default=[])
        print(f"{crate:<18}{len(known):>6}{len(comps):>8}{len(biggest):>8}{len(long_files):>6}{arms:>10}")
        if show and biggest:
            print("   ", ", ".join(sorted("::".join(m) or "lib" for m in biggest)))
        if show and long_files:
            print("    over 600:", ", ".join(long_files))


if __name__ == "__main__":
    main()
