#!/usr/bin/env bash
# Fast ensembling along paths (Garipov et al. 2018) on one pair: seeds 0 and 1 trained to
# LEVEL by CONFIG, connected by DSS, a Bezier curve, NEB and the straight line (the config's
# curve as a polychain with one bend left untrained at the midpoint), and `eval --path
# --ensemble` of each path: the test error of the ensemble of its points (mean of their
# softmax outputs) beside the endpoints' and their two-model ensemble's. Keeps each report
# and eval in OUT, the runs in WORK. The studies that call it:
# experiments/ensemble-mnist-quick/run.sh and experiments/paths-cifar10-quick/run.sh.
#   experiments/ensemble-paths.sh CONFIG LEVEL WORK OUT
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
CONFIG=$1 LEVEL=$2 WORK=$3 OUT=$4
mkdir -p "$WORK" "$OUT"
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
