#!/usr/bin/env bash
# Fast ensembling along paths (Garipov et al. 2018) on the MNIST pair of the methods table
# (configs/methods-mnist-quick.toml: seeds 0 and 1 trained to test error 0.1), by
# experiments/ensemble-paths.sh (DSS, Bezier, NEB, the straight line), and the table. From
# the repository root:
#   experiments/ensemble-mnist-quick/run.sh WORK      (WORK: a scratch folder)
set -euo pipefail
OUT=experiments/ensemble-mnist-quick
experiments/ensemble-paths.sh configs/methods-mnist-quick.toml 0.1 "$1" "$OUT"
python3 "$OUT/table.py" "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
