#!/usr/bin/env bash
# Proxy measurements of the layer rules on wgpu through Mesa's lavapipe (the CPU), for the
# three quick nets' training step: which kernels CubeCL tunes under each rule (its autotune
# log: a convolution's weight gradient tuned as a convolution shows up with an image-sized
# kernel_size), and the kernel launches of one training step (CubeCL's execution log:
# launches of 3 steps minus launches of 1 step, halved, so that loading and initialization
# cancel). Lavapipe's timings do not transfer to a GPU, so none are taken. The launch counts
# proved unreliable (experiments/bench/README.md, "GPU, 2026-12-04"): CubeCL's execution log is
# written asynchronously and loses its tail at exit; the tuned-kernel columns are sound.
#
#   cargo build --release -p levelset-experiments --features wgpu
#   experiments/bench/lavapipe-layers.sh target/release/levelset OUT [MODELS]
set -euo pipefail

bin="$(realpath "$1")"
out="$(realpath -m "$2")"
models="${3:-mnist cifar10 ptb}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
export LEVELSET_DATA_DIR="${LEVELSET_DATA_DIR:-$repo/../shared/data}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
mkdir -p "$out/work"
cd "$out/work"

config() { # profiling level, profiling file, autotune level, autotune file
    cat >cubecl.toml <<TOML
[profiling.logger]
level = "$1"
file = "$2"
append = false

[autotune.logger]
level = "$3"
file = "$4"
append = false
TOML
}

echo "| model | rule | launches per training step | tuned kernel keys | largest tuned convolution kernel |" >"$out/launches.md"
echo "|---|---|---:|---:|---|" >>"$out/launches.md"
for model in $models; do
    for rule in burn matmul; do
        name="$model-$rule"
        # Each pair starts from an empty autotune cache, which the counting runs then reuse.
        export XDG_CACHE_HOME="$out/work/cache-$name"
        config disabled /dev/null minimal "$out/$name-tune.log"
        "$bin" warmup --config "$repo/configs/$model-quick.toml" --layers "$rule" --phases train \
            >"$out/$name-warmup.txt" 2>&1
        counts=()
        for steps in 1 3; do
            config minimal "$out/work/exec.log" disabled /dev/null
            "$bin" warmup --config "$repo/configs/$model-quick.toml" --layers "$rule" \
                --phases train --steps "$steps" >>"$out/$name-warmup.txt" 2>&1
            counts+=("$(grep -c 'Executing' "$out/work/exec.log" || true)")
        done
        per_step=$(((counts[1] - counts[0]) / 2))
        tuned="$(grep -c 'Fastest result' "$out/$name-tune.log" || true)"
        conv_keys="$(grep 'Fastest result' "$out/$name-tune.log" | grep -c 'ConvAutotuneKey' || true)"
        largest="$(grep 'Fastest result' "$out/$name-tune.log" | grep -o 'kernel_size: \[[0-9]*, [0-9]*\]' | sort -t'[' -k2 -n | tail -n 1 || true)"
        echo "| $model | $rule | $per_step (1 step: ${counts[0]}, 3 steps: ${counts[1]}) | $tuned ($conv_keys convolutions) | ${largest:-none} |" >>"$out/launches.md"
    done
done
cat "$out/launches.md"
