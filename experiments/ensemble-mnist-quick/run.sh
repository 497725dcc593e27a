#!/usr/bin/env bash
# Fast ensembling along paths (Garipov et al. 2018) on the MNIST pair of the methods table
# (configs/methods-mnist-quick.toml: seeds 0 and 1 trained to test error 0.1): the pair
# connected by DSS, a Bezier curve, NEB and the straight line (a polychain with one bend left
# untrained at the midpoint), and `eval --path --ensemble` of each path: the test error of the
# ensemble of its points (mean of their softmax outputs) beside the endpoints' and their
# two-model ensemble's. From the repository root:
#   experiments/ensemble-mnist-quick/run.sh WORK      (WORK: a scratch folder)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
WORK=$1
OUT=experiments/ensemble-mnist-quick
CONFIG=configs/methods-mnist-quick.toml
LEVEL=0.1
mkdir -p "$WORK"
# The straight line: the config's curve as an untrained polychain through the midpoint.
sed -e '/^\[curve\]/,/^$/ s/^kind = .*/kind = "polychain"/' \
    -e '/^\[curve\]/,/^$/ s/^steps = .*/steps = 0/' "$CONFIG" > "$WORK/line.toml"
for seed in 0 1; do
    "$LEVELSET" train --config "$CONFIG" --level "$LEVEL" --seed "$seed" --out "$WORK/m$seed" \
        --force
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
python3 "$OUT/table.py" "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
