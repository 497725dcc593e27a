#!/usr/bin/env python3
"""The book's table of a `connect --hessian` run, read from its hessian.json.

    python3 experiments/hessian-mnist-quick/table.py experiments/hessian-mnist-quick/hessian.json

One row a point: its index, position t along the path, energy, the top eigenvalues each with
its residual, the trace with its standard error, and the largest residual relative to the top
eigenvalue (what `levelset hessian` warns about above 0.1).
"""
import json
import sys


def main(path):
    with open(path) as f:
        curvature = json.load(f)
    print("| point | t | energy | top eigenvalues (residual) | trace | largest residual / top |")
    print("|---|---|---|---|---|---|")
    for point in curvature["points"]:
        report = point["hessian"]
        eigen = report["top_eigenvalues"]
        values = ", ".join(f"{e['value']:.2f} ({e['residual']:.4f})" for e in eigen)
        trace = report.get("trace")
        trace = f"{trace['estimate']:.0f} ± {trace['standard_error']:.0f}" if trace else "–"
        worst = max(e["residual"] for e in eigen) / abs(eigen[0]["value"])
        print(
            f"| {point['index']} | {point['t']:.2f} | {point['energy']:.3f} | {values} "
            f"| {trace} | {worst:.1e} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
