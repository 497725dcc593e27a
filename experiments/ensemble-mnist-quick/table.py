#!/usr/bin/env python3
"""The fast-ensembling table of a folder of `eval --path --ensemble` JSON files, one a method
(dss.json, bezier.json, neb.json, line.json): experiments/ensemble-mnist-quick's and
experiments/paths-cifar10-quick's.

    python3 experiments/ensemble-mnist-quick/table.py experiments/ensemble-mnist-quick
"""
import json
import os
import sys

METHODS = ["dss", "bezier", "neb", "line"]


def main(folder):
    print("| path | points | path's highest test error | best point | ensemble of the path's "
          "points | endpoints | endpoints' ensemble |")
    print("|---|---|---|---|---|---|---|")
    for method in METHODS:
        with open(os.path.join(folder, f"{method}.json")) as f:
            run = json.load(f)
        ensemble = run["ensemble"]
        energies = [p["energy"] for p in run["points"]]
        a, b = ensemble["endpoints"]
        print(
            f"| {method} | {ensemble['members']} | {max(energies):.4f} "
            f"| {min(ensemble['points']):.4f} | {ensemble['error']:.4f} "
            f"| {a:.4f}, {b:.4f} | {ensemble['endpoints_ensemble']:.4f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
