#!/usr/bin/env bash
# The MNIST and CIFAR-10 nets before and after they were built from their descriptions:
# the flex release binaries of c72bf83 (hand-written nets) and f3cd795 (described presets),
# alternated before, after, before, after on the 2-core machine with nothing else running.
#   experiments/bench/described-2026-12-05/run.sh BEFORE_BIN AFTER_BIN
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/bench/described-2026-12-05
for run in 1 2; do
    for side in before after; do
        bin=$1; [ "$side" = after ] && bin=$2
        LEVELSET_DATA_DIR=../shared/data "$bin" bench --models mnist,cifar10 --repeats 5 \
            --dss-repeats 0 --out "$out/$side-$run.json" > "$out/$side-$run.log" 2>&1
    done
done
