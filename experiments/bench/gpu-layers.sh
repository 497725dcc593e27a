#!/usr/bin/env bash
# One device call that measures the matmul layer forms (`levelset bench --layers matmul`)
# against Burn's layers (`--layers burn`) and PyTorch on a GPU machine, model by model, each
# part under its own outer timeout so that a slow one cannot starve the others. Every part's
# folder is packed into OUT/layers.tar.gz as soon as it ends, so a call stopped at its limit
# still returns what finished. Prepared on the development machine:
#
#   SUITES="matmul_layers" experiments/bench/build-gpu-bundle.sh cuda
#   (gpu-bundle/data as in experiments/bench/README.md, section GPU)
#
# and run with the device tool, carry ["gpu-bundle/cuda.tar.xz", "gpu-bundle/data"]:
#
#   experiments/bench/gpu-layers.sh gpu-bundle/cuda.tar.xz gpu-bundle/data "$OUT"
#
# PLAN lists the parts in order as RULE:MODEL or RULE:MODEL:SECONDS (default "matmul:cifar10
# matmul:ptb burn:cifar10 matmul:mnist"), then the test suites run; SECONDS, or PART_SECONDS
# (default 100) where a part names none, bounds that part's levelset benchmark, kernel tuning
# included (7-10 s per new kernel shape on an H200). LAUNCH_SECONDS (default 0: skipped) then
# bounds a part that counts and times every kernel of the LAUNCH_MODELS' training step,
# evaluation and segment check under both rules (gpu-check.sh's `launches`).
set -uo pipefail
cd "$(dirname "$0")/../.."

usage="usage: gpu-layers.sh BUNDLE DATA_DIR OUT"
bundle="${1:?$usage}"
data="${2:?$usage}"
out="${3:?$usage}"
seconds="${PART_SECONDS:-100}"
work=/tmp/layers
rm -rf "$work" && mkdir -p "$work" "$out"
cache="${AUTOTUNE_CACHE:-experiments/bench/gpu-h200-2026-12-04/call1/autotune.tar.gz}"
# Only the first part unpacks it: unpacked again, it would overwrite what earlier parts tuned.
unset AUTOTUNE_CACHE

part() {
    local name="$1" limit="$2"
    shift 2
    echo "== $name (limit $limit s)"
    env "$@" timeout "$limit" experiments/bench/gpu-check.sh "$bundle" "$data" "$work/$name"
    echo "   exit $?"
    tar -czf "$out/layers.tar.gz" -C /tmp layers
}

# The first part unpacks the newest H200 autotune cache (AUTOTUNE_CACHE to choose another):
# run 3's keys for Burn's layers plus those the matmul forms tuned on 2026-12-04; later parts
# add to the same target/autotune, which every part packs into its folder.
extra=("AUTOTUNE_CACHE=$cache")
for item in ${PLAN:-matmul:cifar10 matmul:ptb burn:cifar10 matmul:mnist}; do
    IFS=: read -r rule model limit <<<"$item"
    limit="${limit:-$seconds}"
    part "$rule-$model" $((limit + 40)) "${extra[@]}" PARTS=bench STEP_TIMEOUT="$limit" \
        BENCH_ARGS="--models $model --repeats 3 --dss-repeats 0 --layers $rule" \
        TORCH_ARGS="--models $model --repeats 3"
    extra=()
done
if [ "${LAUNCH_SECONDS:-0}" -gt 0 ]; then
    part launches $((LAUNCH_SECONDS + 20)) PARTS=launches STEP_TIMEOUT=$((LAUNCH_SECONDS / 2)) \
        LAUNCH_MODELS="${LAUNCH_MODELS:-mnist cifar10 ptb}"
fi
part tests 90 PARTS=tests STEP_TIMEOUT=60
