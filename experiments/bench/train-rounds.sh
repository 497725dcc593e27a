#!/bin/bash
# One model's training step, levelset and PyTorch alternating, one pair per round: on this
# 2-core machine either side's speed drifts by several percent from run to run, more than a
# single pair can settle. Appends "round N MODEL levelset|pytorch RATE" lines to the log (RATE
# in examples/s, tokens/s for ptb).
#
#   experiments/bench/train-rounds.sh MODEL LOG [ROUNDS...]   (from the repository root,
#   after cargo build --release; MODEL one of poly mnist cifar10 ptb; ROUNDS default to 1 2 3)
set -euo pipefail
model=$1
log=$2
shift 2
rounds=("${@:-1 2 3}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for round in ${rounds[@]}; do
  # levelset bench runs every workload; stop it once the training and evaluation rows are in.
  target/release/levelset bench --models "$model" --repeats 5 --steps 10 --dss-repeats 0 \
    --threads 2 --data-dir ../shared/data --out "$tmp/levelset.json" > "$tmp/levelset.log" 2>&1 &
  pid=$!
  until grep -q 'workload="eval"' "$tmp/levelset.log"; do
    sleep 0.5
    kill -0 $pid 2>/dev/null || { cat "$tmp/levelset.log" >&2; exit 1; }
  done
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  rate=$(grep -o 'workload="train_step" median=[0-9.]*' "$tmp/levelset.log" | cut -d= -f3)
  echo "round $round $model levelset $rate" >> "$log"
  python3 experiments/bench/torch_bench.py --models "$model" --threads 2 --repeats 5 \
    --out "$tmp/torch.json" > "$tmp/torch.log" 2>&1
  rate=$(python3 -c 'import json, sys
rows = json.load(open(sys.argv[1]))["results"]
print(next(r["median"] for r in rows if r["model"] == sys.argv[2] and r["workload"] == "train_step"))' \
    "$tmp/torch.json" "$model")
  echo "round $round $model pytorch $rate" >> "$log"
done
