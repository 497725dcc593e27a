#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU and no Rust toolchain: reports the GPU
# libraries it finds, then, with the prebuilt bundle of experiments/bench/build-gpu-bundle.sh,
# runs `levelset bench` and PyTorch's side of it (where PyTorch with CUDA is installed), the
# backend-generic test suites on the GPU, and the MNIST quick reproduction.
#
#   experiments/bench/gpu-check.sh BUNDLE DATA_DIR OUT
#
# BUNDLE: gpu-bundle/cuda.tar.xz (or its unpacked folder) from build-gpu-bundle.sh; DATA_DIR: the offline data (mnist/, ptb/,
# cifar10/); OUT: folder for logs and JSON results. Exit status: 0 when every step passed.
# Environment:
#   PARTS         which parts run, in this order (default "warmup bench tests reproduce";
#                 also "launches");
#                 device time is scarce, so the most wanted numbers come first. `warmup` runs
#                 the benchmark once untimed so that CubeCL autotunes every kernel shape
#                 (2-25 s each on an H200) into its on-disk cache before `bench` times them
#                 `launches` counts and times the kernels of a training step (forward,
#                 backward, optimizer), an evaluation and a segment check, per kernel, under
#                 each layer rule (`levelset warmup --launches --kernel-times`)
#   LAUNCH_MODELS the quick configs `launches` runs (default "mnist cifar10 ptb")
#   BENCH_ARGS    extra arguments to `levelset bench`, e.g. "--models poly --repeats 1"
#   TORCH_ARGS    extra arguments to torch_bench.py, e.g. "--models poly,mnist"
#   STEP_TIMEOUT  seconds any one step may run before it is stopped and counted as failed
#   AUTOTUNE_CACHE  a .tar.gz of CubeCL's autotune cache (`target/autotune`, which this script
#                 packs into OUT/autotune.tar.gz after every run) to start from: a cache from
#                 the same GPU model skips the minutes of tuning that `warmup` spends
set -uo pipefail
cd "$(dirname "$0")/../.."

usage="usage: gpu-check.sh BUNDLE DATA_DIR OUT (environment: PARTS, BENCH_ARGS, TORCH_ARGS, STEP_TIMEOUT, AUTOTUNE_CACHE)"
bundle="${1:?$usage}"
data="${2:?$usage}"
out="${3:?$usage}"
parts="${PARTS:-warmup bench tests reproduce}"
for part in $parts; do
    case "$part" in warmup | bench | tests | reproduce | launches) ;; *) echo "unknown part '$part' in PARTS: $usage" >&2; exit 2 ;; esac
done
mkdir -p "$out"
if [ -f "$bundle" ]; then
    unpacked="$(mktemp -d)"
    tar -C "$unpacked" -xJf "$bundle" || { echo "cannot unpack $bundle" >&2; exit 2; }
    bundle="$(find "$unpacked" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
fi
if [ ! -x "$bundle/levelset" ]; then
    echo "no levelset binary in $bundle" >&2
    exit 2
fi
summary="$out/summary.txt"
: >"$summary"
failures=0

say() { echo "$*" | tee -a "$summary"; }
# Runs a named step with its output in $out/<name>.log, recording pass/fail and wall time.
step() {
    local name="$1"
    shift
    local start end rc
    start=$(date +%s)
    if [ -n "${STEP_TIMEOUT:-}" ]; then
        timeout "$STEP_TIMEOUT" "$@" >"$out/$name.log" 2>&1
    else
        "$@" >"$out/$name.log" 2>&1
    fi
    rc=$?
    end=$(date +%s)
    if [ $rc -eq 0 ]; then
        say "PASS $name ($((end - start)) s)"
    else
        say "FAIL $name (exit $rc, $((end - start)) s): tail of $out/$name.log:"
        tail -n 15 "$out/$name.log" | sed 's/^/    /' | tee -a "$summary"
        failures=$((failures + 1))
    fi
}

say "== machine"
say "$(uname -srm); $(nproc) cores"
command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$summary"

# Burn's CUDA backend loads libcuda (the driver) and compiles its kernels at run time with
# NVRTC, so both must be loadable. Look where they usually are: the loader cache, the CUDA
# toolkit, and the NVIDIA wheels PyTorch bundles.
say "== GPU libraries"
extra_dirs=()
ldconfig -p | grep -E 'libcuda\.so|libnvrtc|libvulkan' | sed 's/^/    ldconfig: /' | tee -a "$summary"
for dir in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    if ls "$dir"/libnvrtc.so* >/dev/null 2>&1; then
        say "    toolkit: $dir"
        extra_dirs+=("$dir")
    fi
done
if torch_nvidia=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); then
    for dir in "$torch_nvidia"/nvidia/*/lib; do
        if ls "$dir"/libnvrtc*.so* >/dev/null 2>&1; then
            say "    PyTorch's bundled NVRTC: $dir"
            extra_dirs+=("$dir")
            # The wheels ship only libnvrtc.so.<major>; cudarc asks for libnvrtc.so.
            for lib in "$dir"/libnvrtc.so.*; do
                case "$lib" in *alt* | *builtins*) continue ;; esac
                mkdir -p "$out/lib" && ln -sf "$lib" "$out/lib/libnvrtc.so"
                extra_dirs+=("$out/lib")
                break
            done
        fi
    done
fi
if [ ${#extra_dirs[@]} -gt 0 ]; then
    LD_LIBRARY_PATH="$(IFS=:; echo "${extra_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
fi
say "    LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
if ! ldconfig -p | grep -q 'libcuda\.so' && ! ls /usr/lib/x86_64-linux-gnu/libcuda.so* >/dev/null 2>&1; then
    say "    no libcuda found: the cuda bundle cannot run here"
fi

# CubeCL keeps its autotune results under the `target` folder of the Cargo project around
# the working directory: this checkout's.
if [ -n "${AUTOTUNE_CACHE:-}" ]; then
    if mkdir -p target && tar -C target -xzf "$AUTOTUNE_CACHE" autotune; then
        say "== autotune cache: $(find target/autotune -type f | wc -l) file(s) from $AUTOTUNE_CACHE"
    else
        say "== autotune cache: cannot unpack $AUTOTUNE_CACHE (expected a tar.gz of autotune/)"
        failures=$((failures + 1))
    fi
fi

export LEVELSET_DATA_DIR="$data"
say "== levelset"
step info "$bundle/levelset" info
cat "$out/info.log" | tee -a "$summary"

run_tests() {
    say "== backend-generic test suites"
    for test in "$bundle"/tests/*; do
        [ -e "$test" ] || { say "    the bundle holds no test suites"; break; }
        step "test-$(basename "$test")" "$test" --test-threads 1
    done
}

# `levelset bench` as step NAME writing OUT/NAME.json; arguments after BENCH_ARGS override it
# (the CLI keeps an option's last value).
bench_step() {
    local name="$1"
    shift
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of words
    step "$name" "$bundle/levelset" bench --configs configs --data-dir "$data" \
        --out "$out/$name.json" ${BENCH_ARGS:-} "$@"
}

run_warmup() {
    say "== autotune warm-up (untimed)"
    bench_step warmup --repeats 1 --steps 1 --dss-repeats 0
}

run_bench() {
    say "== benchmarks"
    bench_step levelset-bench
    if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        # shellcheck disable=SC2086 # TORCH_ARGS is a list of words
        step torch-bench python3 experiments/bench/torch_bench.py --device cuda \
            --out "$out/torch-bench.json" ${TORCH_ARGS:-}
        step compare python3 experiments/bench/compare.py "$out/levelset-bench.json" \
            "$out/torch-bench.json"
        cat "$out/compare.log" >>"$summary"
    else
        say "    PyTorch with CUDA not available: no side-by-side run"
    fi
}

run_launches() {
    say "== kernel launches and per-kernel times (levelset warmup --launches --kernel-times)"
    for model in ${LAUNCH_MODELS:-mnist cifar10 ptb}; do
        for rule in matmul burn; do
            step "launches-$model-$rule" "$bundle/levelset" warmup --config "configs/$model-quick.toml" \
                --data-dir "$data" --layers "$rule" --kernel-times \
                --launches "$out/launches-$model-$rule.json"
        done
    done
}

run_reproduce() {
    say "== MNIST quick reproduction"
    step reproduce-mnist "$bundle/levelset" reproduce mnist --data-dir "$data" \
        --out "$out/mnist-quick"
}

for part in $parts; do
    "run_$part"
done
if [ -d target/autotune ]; then
    tar -C target -czf "$out/autotune.tar.gz" autotune && say "== autotune cache saved: $out/autotune.tar.gz"
fi

say "== $failures step(s) failed"
exit $((failures > 0))
