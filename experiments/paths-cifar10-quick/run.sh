#!/usr/bin/env bash
# One CIFAR-10 pair at test error 0.5 (the quick sweep's lowest level; configs/paths-cifar10-
# quick.toml: seeds 0 and 1) connected by DSS, a Bezier curve, NEB and the straight line (a
# polychain with one bend left untrained at the midpoint). Stage `paths`: trains the pair,
# connects it each way and measures fast ensembling along each path (`eval --path
# --ensemble`); stage `plane`: the plane through the DSS string's endpoints and its bead
# farthest from their straight line, the Bezier curve drawn on it too. From the repository
# root:
#   experiments/paths-cifar10-quick/run.sh WORK [paths|plane]   (WORK: a scratch folder;
#   both stages when none is named)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
WORK=$1
STAGE=${2:-all}
OUT=experiments/paths-cifar10-quick
CONFIG=configs/paths-cifar10-quick.toml
LEVEL=0.5
mkdir -p "$WORK"
if [ "$STAGE" = paths ] || [ "$STAGE" = all ]; then
    # The straight line: the config's curve as an untrained polychain through the midpoint.
    sed -e '/^\[curve\]/,/^$/ s/^kind = .*/kind = "polychain"/' \
        -e '/^\[curve\]/,/^$/ s/^steps = .*/steps = 0/' "$CONFIG" > "$WORK/line.toml"
    for seed in 0 1; do
        "$LEVELSET" train --config "$CONFIG" --level "$LEVEL" --seed "$seed" \
            --out "$WORK/m$seed" --force
    done
    for method in dss bezier neb line; do
        config=$CONFIG; kind=$method
        if [ "$method" = line ]; then config=$WORK/line.toml; kind=polychain; fi
        rm -rf "$WORK/$method"
        "$LEVELSET" connect --config "$config" --a "$WORK/m0" --b "$WORK/m1" --level "$LEVEL" \
            --method "$kind" --out "$WORK/$method"
        cp "$WORK/$method/report.json" "$OUT/$method-report.json"
        "$LEVELSET" eval --config "$config" --path "$WORK/$method" --ensemble > "$OUT/$method.json"
    done
    python3 experiments/ensemble-mnist-quick/table.py "$OUT" > "$OUT/ensemble.md"
    cat "$OUT/ensemble.md"
fi
if [ "$STAGE" = plane ] || [ "$STAGE" = all ]; then
    rm -rf "$OUT/plane"
    "$LEVELSET" plane --config "$CONFIG" --path "$WORK/dss" --also "$WORK/bezier" --grid 21 \
        --out "$OUT/plane"
fi
