#!/usr/bin/env bash
# One CIFAR-10 pair at test error 0.5 (the quick sweep's lowest level; configs/paths-cifar10-
# quick.toml: seeds 0 and 1). Stage `paths`: experiments/ensemble-paths.sh trains the pair,
# connects it by DSS, a Bezier curve, NEB and the straight line, and measures fast
# ensembling along each path; stage `plane`: the plane through the DSS string's endpoints
# and its bead farthest from their straight line, the Bezier curve drawn on it too. From the
# repository root:
#   experiments/paths-cifar10-quick/run.sh WORK [paths|plane]   (WORK: a scratch folder;
#   both stages when none is named)
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
    rm -rf "$OUT/plane"
    "$LEVELSET" plane --config "$CONFIG" --path "$WORK/dss" --also "$WORK/bezier" --grid 21 \
        --out "$OUT/plane"
fi
