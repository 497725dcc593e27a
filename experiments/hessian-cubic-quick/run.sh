#!/usr/bin/env bash
# The curvature along DSS strings of the cubic quick config at L0 = 0.05: the pairs 4-6
# (connected) and 4-7 (not connected) of experiments/graph-cubic-quick and
# experiments/plane-cubic-quick, connected with `connect --hessian` (configs/cubic-quick-hessian.toml:
# the top 3 eigenvalues and the trace of the test loss's Hessian at every bead). Usage, from
# the repository root:
#   experiments/hessian-cubic-quick/run.sh WORK      (WORK: a scratch folder for checkpoints)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
WORK=$1
OUT=experiments/hessian-cubic-quick
CONFIG=configs/cubic-quick-hessian.toml
mkdir -p "$WORK"
for seed in 4 6 7; do
    "$LEVELSET" train --config "$CONFIG" --level 0.05 --seed "$seed" --out "$WORK/m$seed" --force
done
for pair in 46 47; do
    a=${pair:0:1} b=${pair:1:1}
    rm -rf "$WORK/h$pair"
    "$LEVELSET" connect --config "$CONFIG" --a "$WORK/m$a" --b "$WORK/m$b" --level 0.05 \
        --hessian --out "$WORK/h$pair"
    mkdir -p "$OUT/pair-$pair"
    for f in report.json hessian.json hessian.svg hessian.png; do
        cp "$WORK/h$pair/$f" "$OUT/pair-$pair/$f"
    done
done
