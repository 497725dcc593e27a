#!/usr/bin/env bash
# The paper's polynomial MLP before and after it was built from its description: the flex
# release binaries of f3cd795 (the hand-written Mlp module) and of the commit that adds this
# folder (the described preset), alternated before, after, before, after on the 2-core
# machine with nothing else running.
#   experiments/bench/mlp-described-2026-12-05/run.sh BEFORE_BIN AFTER_BIN
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/bench/mlp-described-2026-12-05
for run in 1 2; do
    for side in before after; do
        bin=$1; [ "$side" = after ] && bin=$2
        "$bin" bench --models poly --repeats 7 --out "$out/$side-$run.json" \
            > "$out/$side-$run.log" 2>&1
    done
done
