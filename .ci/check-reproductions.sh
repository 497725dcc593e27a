#!/usr/bin/env bash
# Re-runs the fast reproductions (quadratic quick, linear, symmetry: seconds each) into a
# scratch folder and compares their results.csv with the committed ones in experiments/, every
# column but the last (wall seconds): counts, outcomes and seeds exactly, real numbers to a
# relative 1e-5 (.ci/compare-results.py says why: the last float32 digits differ between
# CPUs). A difference means the code changed the results and the committed book must be
# regenerated with the command that made it.
#
#   .ci/check-reproductions.sh [path/to/levelset]
set -euo pipefail
cd "$(dirname "$0")/.."

levelset="${1:-target/release/levelset}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failures=0
for task in quadratic linear symmetry; do
    committed="experiments/$task-quick/results.csv"
    "$levelset" reproduce "$task" --out "$scratch/$task" >"$scratch/$task.log" 2>&1 || {
        echo "reproduce $task failed:" >&2
        tail -n 20 "$scratch/$task.log" >&2
        failures=$((failures + 1))
        continue
    }
    if .ci/compare-results.py "$committed" "$scratch/$task/results.csv" >"$scratch/$task.diff"; then
        echo "reproduce $task: matches $committed (real numbers to 1e-5)"
    else
        echo "reproduce $task: differs from $committed (wall seconds aside); regenerate it with" \
            "'levelset reproduce $task' after moving the old folder aside:" >&2
        cat "$scratch/$task.diff" >&2
        failures=$((failures + 1))
    fi
done
exit $((failures > 0))
