#!/usr/bin/env bash
# The walk-through of docs/src/guide/own-networks.md, end to end: two MNIST convnets trained
# in PyTorch, imported into levelset and connected by DSS and by a Bezier curve. Weights and
# bead checkpoints go to WORK (not committed: about 0.9 MB per network); the reports are
# copied here.
#
#   LEVELSET_DATA_DIR=../shared/data PYTHON=/path/to/python-with-torch \
#       experiments/pytorch-mnist/run.sh WORK      # from the repository root
set -euo pipefail
work="$1"
here=experiments/pytorch-mnist
levelset=target/release/levelset
config=configs/pytorch-mnist.toml

"${PYTHON:-python3}" "$here/train_pytorch.py" "$work"
cp "$work/pytorch.json" "$here/pytorch.json"
for net in a b; do
    "$levelset" import --config "$config" --from "$work/$net.pt" --out "$work/$net" --force
    "$levelset" eval --config "$config" --checkpoint "$work/$net" > "$here/eval-$net.json"
done
# The level: the worse endpoint's held-out error, so both lie on the level set.
level=$(python3 -c "import json; print(max(json.load(open('$here/eval-' + n + '.json'))['energy'] for n in 'ab'))")
for method in dss bezier; do
    rm -rf "$work/$method"
    "$levelset" connect --config "$config" --a "$work/a" --b "$work/b" --level "$level" \
        --method "$method" --out "$work/$method"
    cp "$work/$method/report.json" "$here/$method.json"
done
