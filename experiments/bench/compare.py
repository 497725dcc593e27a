#!/usr/bin/env python3
"""Side-by-side markdown table of a levelset and a PyTorch benchmark JSON (torch_bench.py's
schema). The ratio is a speed ratio either way: > 1 means levelset is faster.

    python3 experiments/bench/compare.py LEVELSET.json PYTORCH.json
"""

import json
import sys


def load(path):
    with open(path) as f:
        doc = json.load(f)
    return doc, {(r["model"], r["workload"]): r for r in doc["results"]}


def cell(r):
    if r is None:
        return "–"
    return f"{r['median']:.4g} ({r['min']:.4g}–{r['max']:.4g})"


def ratio(lv, pt):
    if lv is None or pt is None or lv["unit"] != pt["unit"]:
        return "–"
    # Seconds are costs, everything else is a rate: invert so > 1 always favours levelset.
    num, den = (pt, lv) if lv["unit"] == "s" else (lv, pt)
    return f"{num['median'] / den['median']:.2f}" if den["median"] else "–"


def flags(lv, pt):
    out = []
    for side, r in (("levelset", lv), ("pytorch", pt)):
        if r is not None and r.get("flagged"):
            out.append(f"{side} busy ({r.get('other_cpu_share', 0):.2f})")
    if lv is not None and pt is not None and lv["unit"] != pt["unit"]:
        out.append(f"units differ: {lv['unit']} vs {pt['unit']}")
    return ", ".join(out)


def header(name, doc):
    m = doc.get("machine", {})
    return (
        f"- {name}: {doc.get('tool', '?')} {doc.get('version', '?')} ({doc.get('backend', '?')}), "
        f"{doc.get('threads', '?')} threads, machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores"
        + (f", {m['simd']}" if "simd" in m else "")
    )


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip())
    lv_doc, lv = load(sys.argv[1])
    pt_doc, pt = load(sys.argv[2])
    print(header("levelset", lv_doc))
    print(header("pytorch", pt_doc))
    print()
    print("| model | workload | unit | levelset median (min–max) | pytorch median (min–max) | speed ratio levelset/pytorch | flags |")
    print("|---|---|---|---|---|---|---|")
    # Levelset's order first, then rows only PyTorch has.
    keys = list(lv) + [k for k in pt if k not in lv]
    for key in keys:
        a, b = lv.get(key), pt.get(key)
        unit = (a or b)["unit"]
        print(f"| {key[0]} | {key[1]} | {unit} | {cell(a)} | {cell(b)} | {ratio(a, b)} | {flags(a, b)} |")


if __name__ == "__main__":
    main()
