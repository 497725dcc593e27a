#!/usr/bin/env bash
# Builds what experiments/bench/gpu-check.sh runs on a GPU machine that has no Rust toolchain
# and no network: stripped release binaries of `levelset` and of the backend-generic test
# suites, for one GPU backend, packed as <bundle dir>/<backend>.tar.xz, small enough to travel
# (the device machines take at most 64 MiB of working tree; every test binary links all of
# Burn, so the unpacked folder is larger).
#
#   experiments/bench/build-gpu-bundle.sh cuda [gpu-bundle]
#   experiments/bench/build-gpu-bundle.sh wgpu [gpu-bundle]
#   experiments/bench/build-gpu-bundle.sh flex [gpu-bundle]   # a CPU bundle: dry-runs the check
#
# SUITES (environment) names the integration-test suites to pack, e.g. "backend dss tasks":
# with every suite the CUDA bundle is 48 MiB packed, too large to travel with the data.
set -euo pipefail
cd "$(dirname "$0")/../.."

feature="${1:?usage: build-gpu-bundle.sh cuda|wgpu|flex [bundle dir]}"
bundle="${2:-gpu-bundle}/$feature"
case "$feature" in cuda | wgpu | flex) ;; *) echo "backend must be cuda, wgpu or flex, got $feature" >&2; exit 2 ;; esac
limit_mb=64
for suite in ${SUITES:-}; do
    if [ ! -f "crates/models/tests/$suite.rs" ] && [ ! -f "crates/strings/tests/$suite.rs" ]; then
        echo "no test suite '$suite' in crates/models/tests or crates/strings/tests" >&2
        exit 2
    fi
done

rm -rf "$bundle"
mkdir -p "$bundle/tests"
cargo build --release -p levelset-experiments --features "$feature"
cp target/release/levelset "$bundle/levelset"

# The models and strings suites are written against the feature-selected backend, so with
# this feature they run on the GPU. The CLI suite needs the `levelset` binary beside it at its
# build path, so it stays on the development machine.
# One cargo call per crate: `--test` names apply to every package a call selects.
builds=("-p levelset-models" "-p levelset-strings")
if [ -n "${SUITES:-}" ]; then
    builds=()
    for crate in models strings; do
        picked=""
        for suite in $SUITES; do
            if [ -f "crates/$crate/tests/$suite.rs" ]; then picked="$picked --test $suite"; fi
        done
        if [ -n "$picked" ]; then builds+=("-p levelset-$crate$picked"); fi
    done
fi
for build in "${builds[@]}"; do
    # shellcheck disable=SC2086 # each build is a list of cargo arguments
    cargo test --release --no-run --features "levelset-models/$feature" $build \
        --message-format=json 2>/dev/null
done |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])
' | while read -r exe; do
    name="$(basename "$exe" | sed 's/-[0-9a-f]\{16\}$//')"
    cp "$exe" "$bundle/tests/$name"
done
strip "$bundle/levelset" "$bundle"/tests/*

ls -la "$bundle" "$bundle/tests"
packed="$bundle.tar.xz"
tar -C "$(dirname "$bundle")" -cf - "$feature" | xz -T0 -6 >"$packed"
size_mb=$(( $(stat -c %s "$packed") / 1048576 ))
echo "bundle $packed: ${size_mb} MiB packed, $(du -sm "$bundle" | cut -f1) MiB unpacked"
if [ "$size_mb" -gt "$limit_mb" ]; then
    echo "bundle is over ${limit_mb} MiB: drop test suites" >&2
    exit 1
fi
