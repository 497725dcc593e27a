#!/usr/bin/env python3
"""The before/after table of a bench folder whose run.sh alternates two binaries twice
(`before-1.json`, `after-1.json`, `before-2.json`, `after-2.json`): each workload's medians per
run and the after / before speed ratio of the means of the two runs (> 1: after is faster).

    python3 experiments/bench/before_after.py experiments/bench/FOLDER > experiments/bench/FOLDER/table.md
"""
import json
import os
import sys

here = sys.argv[1]


def medians(side):
    runs = []
    for run in (1, 2):
        with open(os.path.join(here, f"{side}-{run}.json")) as f:
            runs.append({(r["model"], r["workload"]): r for r in json.load(f)["results"]})
    return runs


before, after = medians("before"), medians("after")
keys = [k for k in after[0] if k in after[1]]
print("| model | workload | unit | before: runs 1, 2 | after: runs 1, 2 | after / before (speed, means of the two) |")
print("|---|---|---|---|---|---|")
for key in keys:
    unit = after[0][key]["unit"]
    a = [r[key]["median"] for r in after]
    b = [r[key]["median"] for r in before if key in r]
    cells = ", ".join(f"{v:.4g}" for v in b) if b else "–"
    if len(b) == 2:
        mean_a, mean_b = sum(a) / 2, sum(b) / 2
        ratio = mean_b / mean_a if unit == "s" else mean_a / mean_b
        ratio = f"{ratio:.2f}"
    else:
        ratio = "–"
    print(f"| {key[0]} | {key[1]} | {unit} | {cells} | {', '.join(f'{v:.4g}' for v in a)} | {ratio} |")
