#!/usr/bin/env bash
# The ResNet walk-through (README.md here): He et al.'s ResNet-20 and ResNet-56 with option A
# shortcuts, trained in PyTorch and saved as released checkpoints are (`.th`, a dict around a
# DataParallel state_dict), imported into levelset without --map and evaluated. Weights and
# checkpoints go to WORK (not committed); the reports are copied here.
#
#   LEVELSET_DATA_DIR=../shared/data PYTHON=/path/to/python-with-torch \
#       experiments/pytorch-resnet20/run.sh WORK EPOCHS      # from the repository root
set -euo pipefail
work="$1"
epochs="$2"
here=experiments/pytorch-resnet20
levelset="${LEVELSET:-target/release/levelset}"
for depth in 20 56; do
    "${PYTHON:-python3}" "$here/train_pytorch.py" "$work" "$depth" "$epochs"
    cp "$work/resnet$depth.json" "$here/pytorch-$depth.json"
    # configs/resnet20-a.toml at another depth changes its `depth` line only.
    sed "s/^depth = 20$/depth = $depth/; s/^name = \"resnet20-a\"$/name = \"resnet$depth-a\"/" \
        configs/resnet20-a.toml > "$work/resnet$depth-a.toml"
    "$levelset" import --config "$work/resnet$depth-a.toml" --from "$work/resnet${depth}_a.th" \
        --out "$work/r$depth" --force | tee "$here/import-$depth.log"
    "$levelset" eval --config "$work/resnet$depth-a.toml" --checkpoint "$work/r$depth" \
        > "$here/eval-$depth.json"
done
