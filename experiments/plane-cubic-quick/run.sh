#!/usr/bin/env bash
# The plane through a DSS string of the cubic quick config at L0 = 0.05: minima 4 and 7 of
# experiments/graph-cubic-quick (the pair DSS did not connect there; seeds 4 and 7 are its
# minima 4 and 7), and minima 4 and 6 (connected). Trains the three minima, connects the two
# pairs, and draws the planes through each string (its endpoints and its bead farthest from
# the straight line). Usage, from the repository root:
#   experiments/plane-cubic-quick/run.sh WORK      (WORK: a scratch folder for checkpoints)
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
WORK=$1
OUT=experiments/plane-cubic-quick
CONFIG=configs/cubic-quick.toml
mkdir -p "$WORK"
for seed in 4 6 7; do
    "$LEVELSET" train --config "$CONFIG" --level 0.05 --seed "$seed" --out "$WORK/m$seed" --force
done
for pair in 47 46; do
    a=${pair:0:1} b=${pair:1:1}
    rm -rf "$WORK/c$pair"
    "$LEVELSET" connect --config "$CONFIG" --a "$WORK/m$a" --b "$WORK/m$b" --level 0.05 \
        --out "$WORK/c$pair"
    cp "$WORK/c$pair/report.json" "$OUT/connect-$pair.json"
    rm -rf "$OUT/plane-$pair"
    "$LEVELSET" plane --config "$CONFIG" --path "$WORK/c$pair" --grid 41 --out "$OUT/plane-$pair"
done
