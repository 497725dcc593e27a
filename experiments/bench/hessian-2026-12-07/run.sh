#!/usr/bin/env bash
# One Hessian-vector product (a central difference of two gradients of the curvature loss)
# against one gradient, levelset only (`hessian_gradient`, `hessian_vector_product`), on the
# polynomial, MNIST and CIFAR-10 nets, with nothing else running. From the repository root:
#   LEVELSET=target/release/levelset experiments/bench/hessian-2026-12-07/run.sh
set -euo pipefail
out=experiments/bench/hessian-2026-12-07
LEVELSET=${LEVELSET:-target/release/levelset}
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
"$LEVELSET" bench --models poly,mnist,cifar10 --repeats 5 --steps 3 --dss-repeats 0 \
  --out $out/levelset.json 2>&1 | tee $out/levelset.log
