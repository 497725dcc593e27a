#!/usr/bin/env python3
"""Fails when the files of a crate import each other in a loop.

A file is a module (`src/a/b.rs` is `a::b`, `src/a/mod.rs` is `a`); it imports another when
its code, comments aside, names `crate::<module>` (or `super::<sibling>` in a nested module).
Reads every crate under crates/; prints each loop with its edges.

    .ci/import-loops.py
"""
import os
import re
import sys


def modules(src):
    found = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, src)[:-3].replace("/mod", "").replace("/", "::")
            if module in ("lib", "main"):
                module = "crate"
            with open(path, encoding="utf-8") as f:
                found[module] = re.sub(r"//[^\n]*", "", f.read())
    return found


def imports(found):
    names = set(found)
    edges = {m: set() for m in names}
    for module, code in found.items():
        for hit in re.findall(r"crate::([a-z_0-9]+(?:::[a-z_0-9]+)*)", code):
            parts = hit.split("::")
            for k in range(len(parts), 0, -1):
                target = "::".join(parts[:k])
                if target in names:
                    if target != module:
                        edges[module].add(target)
                    break
        for group in re.findall(r"use crate::\{([^;]*)\};", code, re.S):
            for item in group.split(","):
                first = item.strip().split("::")[0]
                if first in names and first != module:
                    edges[module].add(first)
        if "::" in module:
            parent = module.rsplit("::", 1)[0]
            for hit in re.findall(r"super::([a-z_0-9]+)", code):
                target = f"{parent}::{hit}"
                if target in names and target != module:
                    edges[module].add(target)
    return edges


def loops(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")
    failed = False
    for crate in sorted(os.listdir(root)):
        src = os.path.join(root, crate, "src")
        if not os.path.isdir(src):
            continue
        edges = imports(modules(src))
        for component in loops(edges):
            failed = True
            print(f"crates/{crate}: import loop between {', '.join(component)}")
            for module in component:
                inside = sorted(e for e in edges[module] if e in component)
                print(f"    {module} -> {', '.join(inside)}")
    if not failed:
        print("no import loops between the files of any crate")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
