#!/usr/bin/env python3
"""Finds import loops between the top-level modules of a crate.

Usage: scripts/import-cycles.py CRATE_SRC_DIR [...]

A top-level module is a file or directory directly under src/ (lib.rs and
main.rs, the crate roots, are left out: every module is reachable from them).
An edge a -> b is any `crate::b` path (in a `use` or inline) in a file of a.
A loop among top-level modules is reported, and the exit status is 1; the
project keeps none (docs/ARCHITECTURE.md lists what may depend on what).
Comments are ignored; test code is not (a loop through tests is a loop too).
"""
import pathlib
import re
import sys


def top_module(src: pathlib.Path, f: pathlib.Path) -> str | None:
    rel = f.relative_to(src)
    if len(rel.parts) == 1:
        name = rel.stem
        return None if name in ("lib", "main") else name
    return rel.parts[0]


def edges(src: pathlib.Path) -> dict[str, set[str]]:
    mods = {top_module(src, f) for f in src.rglob("*.rs")} - {None}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    path_re = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
    group_re = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)
    for f in src.rglob("*.rs"):
        me = top_module(src, f)
        if me is None:
            continue
        text = "\n".join(line.split("//")[0] for line in f.read_text(errors="replace").splitlines())
        targets = set(path_re.findall(text))
        for group in group_re.findall(text):
            targets.update(re.findall(r"(?:^|[,{]\s*)([a-z_][a-z0-9_]*)", group))
        for t in targets:
            if t in mods and t != me:
                graph[me].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, seen = [], set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        found.append(path + [start])
                elif nxt not in path and len(path) < 8:
                    stack.append((nxt, path + [nxt]))
    return found


def main() -> int:
    bad = 0
    for arg in sys.argv[1:]:
        src = pathlib.Path(arg)
        for c in cycles(edges(src)):
            print(f"{src}: import loop: {' -> '.join(c)}")
            bad = 1
    if not bad:
        print(f"no import loops in {', '.join(sys.argv[1:])}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
