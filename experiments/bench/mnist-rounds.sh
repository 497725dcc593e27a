#!/bin/bash
# MNIST training step, levelset and PyTorch alternating, one pair per round: on this 2-core
# machine either side's speed drifts by several percent from run to run, more than a single
# pair can settle. Appends "round N mnist levelset|pytorch EXAMPLES_PER_S" lines to the log.
#
#   experiments/bench/mnist-rounds.sh LOG [ROUNDS...]   (from the repository root, after
#   cargo build --release; ROUNDS default to 1 2 3)
set -euo pipefail
log=$1
shift
rounds=("${@:-1 2 3}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for round in ${rounds[@]}; do
  # levelset bench runs every workload; stop it once the training and evaluation rows are in.
  target/release/levelset bench --models mnist --repeats 5 --steps 10 --dss-repeats 0 \
    --threads 2 --data-dir ../shared/data --out "$tmp/levelset.json" > "$tmp/levelset.log" 2>&1 &
  pid=$!
  until grep -q 'workload="eval"' "$tmp/levelset.log"; do
    sleep 0.5
    kill -0 $pid 2>/dev/null || { cat "$tmp/levelset.log" >&2; exit 1; }
  done
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  rate=$(grep -o 'workload="train_step" median=[0-9.]*' "$tmp/levelset.log" | cut -d= -f3)
  echo "round $round mnist levelset $rate" >> "$log"
  python3 experiments/bench/torch_bench.py --models mnist --threads 2 --repeats 5 \
    --out "$tmp/torch.json" > "$tmp/torch.log" 2>&1
  rate=$(awk '$1 == "mnist" && $2 == "train_step" {print $4}' "$tmp/torch.log")
  echo "round $round mnist pytorch $rate" >> "$log"
done
