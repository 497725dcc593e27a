#!/usr/bin/env bash
# The curvature along one pair's DSS string at each level: seeds A and B trained to the level
# and connected with `connect --hessian` (the config's [hessian] section), the report, the
# curvature and its figure copied into OUT/level-L/. The studies' run.sh scripts call it:
#   experiments/hessian-strings.sh CONFIG OUT WORK SEED_A SEED_B LEVEL...
set -euo pipefail
LEVELSET=${LEVELSET:-target/release/levelset}
CONFIG=$1 OUT=$2 WORK=$3 A=$4 B=$5
shift 5
mkdir -p "$WORK"
for level in "$@"; do
    for seed in "$A" "$B"; do
        "$LEVELSET" train --config "$CONFIG" --level "$level" --seed "$seed" \
            --out "$WORK/m$seed-$level" --force
    done
    rm -rf "$WORK/c$level"
    "$LEVELSET" connect --config "$CONFIG" --a "$WORK/m$A-$level" --b "$WORK/m$B-$level" \
        --level "$level" --hessian --out "$WORK/c$level"
    mkdir -p "$OUT/level-$level"
    for f in report.json hessian.json hessian.svg hessian.png; do
        cp "$WORK/c$level/$f" "$OUT/level-$level/$f"
    done
done
