#!/usr/bin/env bash
# ResNet-20 (configs/resnet20-quick.toml: option B, batch 128, SGD momentum + weight decay,
# evaluation = 5-batch statistics pass + 500 test images) in levelset and in PyTorch, side by
# side on one machine with nothing else running. Run from the repository root after
# `cargo build --release -p levelset-experiments`.
set -euo pipefail
out=experiments/bench/resnet20-2026-12-07
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
python=${PYTHON:-python3}
for round in 1 2; do
  target/release/levelset bench --models resnet20 --repeats 3 --steps 3 --dss-repeats 0 \
    --out $out/levelset-$round.json 2>&1 | tee $out/levelset-$round.log
  $python experiments/bench/torch_bench.py --threads 2 --models resnet20 --repeats 3 \
    --out $out/torch-$round.json 2>&1 | tee $out/torch-$round.log
done
target/release/levelset bench --models resnet20 --repeats 1 --steps 3 --dss-repeats 0 \
  --breakdown --out $out/levelset-breakdown.json 2>&1 | tee $out/levelset-breakdown.log
