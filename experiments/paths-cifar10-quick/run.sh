#!/usr/bin/env bash
# One CIFAR-10 pair at test error 0.5 (the quick sweep's lowest level; configs/paths-cifar10-
# quick.toml: seeds 0 and 1). Stage `paths`: experiments/ensemble-paths.sh trains the pair,
# connects it by DSS, a Bezier curve, NEB and the straight line, and measures fast
# ensembling along each path; stage `plane`: the plane through the DSS string's endpoints
# and its bead farthest from their straight line, the Bezier curve drawn on it too (test
# error, and the training loss on the first 2,000 training images); stage
# `hessian`: the top 2 eigenvalues and the trace (20 probes) of the training cross-entropy's
# Hessian over 500 training images at every point of the DSS string, as the MNIST study's.
# From the repository root:
#   experiments/paths-cifar10-quick/run.sh WORK [paths|plane|hessian]   (WORK: a scratch
#   folder; every stage when none is named)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
WORK=$1
STAGE=${2:-all}
OUT=experiments/paths-cifar10-quick
CONFIG=configs/paths-cifar10-quick.toml
if [ "$STAGE" = paths ] || [ "$STAGE" = all ]; then
    experiments/ensemble-paths.sh "$CONFIG" 0.5 "$WORK" "$OUT"
    python3 experiments/ensemble-mnist-quick/table.py "$OUT" > "$OUT/ensemble.md"
    cat "$OUT/ensemble.md"
fi
if [ "$STAGE" = plane ] || [ "$STAGE" = all ]; then
    # The training loss beside the test error on the first 2,000 training images, not all
    # 10,000 (a 17 x 17 grid in about ten minutes on 2 cores); nothing is trained here.
    sed -e '/^\[task\]/a train_limit = 2000' "$CONFIG" > "$WORK/plane.toml"
    rm -rf "$OUT/plane"
    "$LEVELSET" plane --config "$WORK/plane.toml" --path "$WORK/dss" --also "$WORK/bezier" \
        --grid 17 --out "$OUT/plane"
fi
if [ "$STAGE" = hessian ] || [ "$STAGE" = all ]; then
    "$LEVELSET" hessian --config "$CONFIG" --path "$WORK/dss" --top 2 --trace --probes 20 \
        --split train --examples 500 --seed 0
    mkdir -p "$OUT/hessian"
    for f in report.json hessian.json hessian.svg hessian.png; do
        cp "$WORK/dss/$f" "$OUT/hessian/$f"
    done
    python3 experiments/hessian-mnist-quick/table.py "$OUT/hessian/hessian.json" \
        > "$OUT/hessian/table.md"
fi
