#!/usr/bin/env bash
# The curvature along DSS strings of the MNIST quick config: seeds 0 and 1 trained to each
# level and connected with `connect --hessian` (configs/mnist-quick-hessian.toml: the top 2
# eigenvalues and the trace of the training cross-entropy's Hessian over 500 training images,
# at every bead, the products holding each point's activation pattern). At 0.05 the seeds are
# minima 0 and 1 of the graph study. From the repository root:
#   experiments/hessian-mnist-quick/run.sh WORK [LEVEL ...]   (WORK: a scratch folder for
#   checkpoints; levels default to 0.1 and 0.05)
set -euo pipefail
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
WORK=$1
shift
LEVELS=("$@")
[ ${#LEVELS[@]} -gt 0 ] || LEVELS=(0.1 0.05)
OUT=experiments/hessian-mnist-quick
experiments/hessian-strings.sh configs/mnist-quick-hessian.toml "$OUT" "$WORK" 0 1 "${LEVELS[@]}"
for level in "${LEVELS[@]}"; do
    python3 "$OUT/table.py" "$OUT/level-$level/hessian.json" > "$OUT/level-$level/table.md"
done
