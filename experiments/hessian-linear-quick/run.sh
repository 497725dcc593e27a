#!/usr/bin/env bash
# The curvature along DSS strings of the linear-regression quick config (a 6-10-10-3 deep
# linear net, squared error): one pair (seeds 1 and 2) at L0 = 0.1 and at 0.02, connected with
# `connect --hessian` (configs/linear-quick-hessian.toml: the top 3 eigenvalues and the trace
# of the training loss's Hessian at every bead). Usage, from the repository root:
#   experiments/hessian-linear-quick/run.sh WORK      (WORK: a scratch folder for checkpoints)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
WORK=$1
OUT=experiments/hessian-linear-quick
CONFIG=configs/linear-quick-hessian.toml
mkdir -p "$WORK"
for level in 0.1 0.02; do
    for seed in 1 2; do
        "$LEVELSET" train --config "$CONFIG" --level "$level" --seed "$seed" \
            --out "$WORK/m$seed-$level" --force
    done
    rm -rf "$WORK/c$level"
    "$LEVELSET" connect --config "$CONFIG" --a "$WORK/m1-$level" --b "$WORK/m2-$level" \
        --level "$level" --hessian --out "$WORK/c$level"
    mkdir -p "$OUT/level-$level"
    for f in report.json hessian.json hessian.svg hessian.png; do
        cp "$WORK/c$level/$f" "$OUT/level-$level/$f"
    done
done
