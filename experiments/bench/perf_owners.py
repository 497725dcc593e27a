#!/usr/bin/env python3
"""Share of a call-graph profile's samples per (what ran, which levelset kernel asked for it).

A flat profile names gemm's microkernel and packing without saying whose product they are;
this groups every sample by its leaf (gemm's kernel and packing folded into one name each)
and by the nearest levelset flex kernel on its stack, so that, say, the convolutions'
backward products and the dense layers' come apart.

    perf record -F 499 --call-graph dwarf,16384 -o P.data BIN bench ...
    perf script -i P.data > P.txt
    python3 experiments/bench/perf_owners.py P.txt [TOP]

BIN needs line tables (CARGO_PROFILE_RELEASE_DEBUG=line-tables-only) for inlined frames.
"""

import collections
import re
import sys

# Frames that pass work through without owning it.
PASS_THROUGH = ("flex::matrix::", "flex::par_zeroed", "flex::{impl")


def frame_name(line):
    parts = line.strip().split(" ", 1)
    return re.sub(r"\+0x[0-9a-f]+.*", "", parts[-1])


def leaf_kind(lines):
    """The innermost frame's name, or gemm's kernel, packing or driver wherever their inlined
    parts (`execute`, `write`, ...) ran: the first frame not inlined is the symbol that ran."""
    end = next((i for i, l in enumerate(lines) if not l.rstrip().endswith("(inlined)")), 0)
    symbol = lines[end]
    if "microkernel" in symbol:
        return "gemm kernel"
    if "gemm_common::simd" in symbol or "pack_operands" in symbol:
        return "gemm packing"
    if any("gemm_" in l for l in lines[: end + 2]):
        return "gemm driver (kernels inlined into it)"
    return frame_name(lines[0])[:60]


def owner(frames):
    for frame in frames:
        if "flex::conv::" in frame and "backward" in frame:
            return "conv backward"
        if "flex::conv::forward" in frame:
            return "conv forward"
        if frame.startswith("levelset_models::") and not any(p in frame for p in PASS_THROUGH):
            return re.sub(r"<.*", "", frame)[:70]
    return "(outside levelset: gemm's own threads, burn, the allocator)"


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    samples = collections.Counter()
    total = 0
    # `perf script` prints a header line per sample, then one indented line per frame.
    for block in re.split(r"\n(?=\S)", open(path).read()):
        lines = [l for l in block.split("\n")[1:] if l.strip()]
        if not lines:
            continue
        total += 1
        samples[(leaf_kind(lines), owner([frame_name(l) for l in lines]))] += 1
    print(f"{total} samples")
    for (leaf, who), count in samples.most_common(top):
        print(f"{100 * count / total:5.1f}%  {leaf:60}  {who}")


if __name__ == "__main__":
    main()
