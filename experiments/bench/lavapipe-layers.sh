#!/usr/bin/env bash
# Proxy measurements of the layer rules on wgpu through Mesa's lavapipe (the CPU), for the
# quick nets: which kernels CubeCL tunes under each rule (its autotune log: a convolution's
# weight gradient tuned as a convolution shows up with an image-sized kernel_size), and the
# kernel launches of a training step (split into forward, backward and optimizer update), an
# energy evaluation and a segment check, once tuned, counted inside levelset's process by
# `levelset warmup --launches` (CubeCL's execution log, read after each phase once it has
# drained). Lavapipe's timings do not transfer to a GPU, so none are taken.
#
#   cargo build --release -p levelset-experiments --features wgpu
#   experiments/bench/lavapipe-layers.sh target/release/levelset OUT [MODELS]
#
# Each model and rule runs under a limit of PART_SECONDS (default 1200): lavapipe tunes slowly.
# RULES (default "burn matmul") are the layer rules to run. PHASES (default "train") are the
# warm-up's phases: lavapipe cannot allocate a buffer over 256 MiB, which the matmul forms'
# unfolded patches of a 500-image evaluation batch exceed (MNIST's second convolution:
# 500 x 800 x 196 floats, 314 MB), so eval and check are counted on a GPU.
set -euo pipefail

bin="$(realpath "$1")"
out="$(realpath -m "$2")"
models="${3:-mnist cifar10 ptb}"
part_seconds="${PART_SECONDS:-1200}"
phases="${PHASES:-train}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
export LEVELSET_DATA_DIR="${LEVELSET_DATA_DIR:-$repo/../shared/data}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
mkdir -p "$out"
# Caches and the CubeCL config live in a scratch folder, not beside the results.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# The autotune log goes to a file; `--launches` turns the execution log on itself.
cat >cubecl.toml <<TOML
[autotune.logger]
level = "minimal"
file = "tune.log"
append = false
TOML

for model in $models; do
    for rule in ${RULES:-burn matmul}; do
        name="$model-$rule"
        # Each model and rule starts from an empty autotune cache.
        export XDG_CACHE_HOME="$work/cache-$name"
        status=0
        timeout "$part_seconds" "$bin" warmup --config "$repo/configs/$model-quick.toml" \
            --layers "$rule" --phases "$phases" --launches "$out/$name-launches.json" \
            >"$out/$name-warmup.txt" 2>&1 || status=$?
        mv tune.log "$out/$name-tune.log" 2>/dev/null || true
        echo "exit status $status" >>"$out/$name-warmup.txt"
    done
done

python3 - "$out" $models <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
rows = ["| model | rule | step | forward | backward | optimizer | eval | segment check | tuned keys | largest tuned convolution kernel |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
for model in sys.argv[2:]:
    for rule in ("burn", "matmul"):
        name = f"{model}-{rule}"
        if not (out / f"{name}-warmup.txt").exists():
            continue
        tune = out / f"{name}-tune.log"
        fastest = [l for l in tune.read_text().splitlines() if "Fastest result" in l] if tune.exists() else []
        convs = [l for l in fastest if "ConvAutotuneKey" in l]
        sizes = [tuple(map(int, m)) for l in convs for m in re.findall(r"kernel_size: \[(\d+), (\d+)\]", l)]
        largest = "x".join(map(str, max(sizes))) if sizes else "none"
        counts = out / f"{name}-launches.json"
        if counts.exists():
            phases = {p["phase"]: p["launches"] for p in json.loads(counts.read_text())["phases"]}
            check = phases.get("segment_check_stacked", phases.get("segment_check_pointwise"))
            cells = [phases.get(k) for k in ("train_step", "step_forward", "step_backward", "step_optimizer", "eval")] + [check]
            cells = ["-" if c is None else f"{c:g}" for c in cells]
        else:
            cells = ["not finished"] + ["-"] * 5
        rows.append(f"| {model} | {rule} | " + " | ".join(cells) + f" | {len(fastest)} ({len(convs)} convolutions) | {largest} |")
(out / "launches.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
