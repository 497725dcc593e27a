#!/usr/bin/env bash
# After flex's convolution took strided ones too (a ResNet's downsampling): ResNet-20 as in
# ../resnet20-2026-12-07/run.sh, levelset then PyTorch, then levelset's breakdown. Run from
# the repository root after `cargo build --release -p levelset-experiments`.
set -euo pipefail
out=experiments/bench/resnet20-2026-12-07-stride
export LEVELSET_DATA_DIR=${LEVELSET_DATA_DIR:-../shared/data}
python=${PYTHON:-python3}
target/release/levelset bench --models resnet20 --repeats 3 --steps 3 --dss-repeats 0 \
  --out $out/levelset.json 2>&1 | tee $out/levelset.log
$python experiments/bench/torch_bench.py --threads 2 --models resnet20 --repeats 3 \
  --out $out/torch.json 2>&1 | tee $out/torch.log
target/release/levelset bench --models resnet20 --repeats 1 --steps 3 --dss-repeats 0 \
  --breakdown --out $out/levelset-breakdown.json 2>&1 | tee $out/levelset-breakdown.log
