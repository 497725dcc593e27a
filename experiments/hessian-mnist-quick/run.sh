#!/usr/bin/env bash
# The curvature along a DSS string of the MNIST quick config at test error 0.05: minima 0 and 1
# of the graph study (seeds 0 and 1), connected with `connect --hessian`
# (configs/mnist-quick-hessian.toml: the top 2 eigenvalues and the trace of the training
# cross-entropy's Hessian over 500 training images, at every bead). From the repository root:
#   experiments/hessian-mnist-quick/run.sh WORK      (WORK: a scratch folder for checkpoints)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
WORK=$1
OUT=experiments/hessian-mnist-quick
CONFIG=configs/mnist-quick-hessian.toml
mkdir -p "$WORK"
for seed in 0 1; do
    "$LEVELSET" train --config "$CONFIG" --level 0.05 --seed "$seed" --out "$WORK/m$seed" --force
done
rm -rf "$WORK/c01"
"$LEVELSET" connect --config "$CONFIG" --a "$WORK/m0" --b "$WORK/m1" --level 0.05 --hessian \
    --out "$WORK/c01"
for f in report.json hessian.json hessian.svg hessian.png; do
    cp "$WORK/c01/$f" "$OUT/$f"
done
