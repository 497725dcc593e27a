#!/usr/bin/env bash
# The curvature along DSS strings of the linear-regression quick config (a 6-10-10-3 deep
# linear net, squared error): one pair (seeds 1 and 2) at L0 = 0.1 and at 0.02, connected with
# `connect --hessian` (configs/linear-quick-hessian.toml: the top 3 eigenvalues and the trace
# of the training loss's Hessian at every bead). Usage, from the repository root:
#   experiments/hessian-linear-quick/run.sh WORK      (WORK: a scratch folder for checkpoints)
set -euo pipefail
experiments/hessian-strings.sh configs/linear-quick-hessian.toml experiments/hessian-linear-quick \
    "$1" 1 2 0.1 0.02
