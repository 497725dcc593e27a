#!/usr/bin/env python3
"""Compares a reproduction's results.csv with the committed one, every column but the last
(wall seconds): counts, outcomes and seeds exactly, real numbers to a relative 1e-5.

The same binary gives the same rows on one machine, but not to the last float32 digit on
every CPU: the committed fast reproductions, made on one machine, differ on an AMD EPYC by
up to 2.4e-7 relative (a few float32 ulps) in energies and lengths, with every count,
outcome and bead the same, as the libraries under levelset pick kernels by the CPU they run
on. A code change that moves a result moves it far more than 1e-5, or moves a count.

    .ci/compare-results.py COMMITTED.csv NEW.csv
"""

import csv
import sys

TOLERANCE = 1e-5


def is_real(text):
    try:
        float(text)
    except ValueError:
        return False
    return any(c in text for c in ".eE") or text.lower() in ("nan", "inf", "-inf")


def main(committed, new):
    a = list(csv.reader(open(committed)))
    b = list(csv.reader(open(new)))
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a) - 1} rows committed, {len(b) - 1} reproduced")
    if a[:1] != b[:1]:
        problems.append(f"header {a[:1]} committed, {b[:1]} reproduced")
    header = a[0]
    for line, (ra, rb) in enumerate(zip(a[1:], b[1:]), start=2):
        if len(ra) != len(rb):
            problems.append(f"line {line}: {len(ra)} columns committed, {len(rb)} reproduced")
            continue
        for name, x, y in zip(header[:-1], ra[:-1], rb[:-1]):
            if x == y:
                continue
            if is_real(x) and is_real(y):
                fx, fy = float(x), float(y)
                if abs(fx - fy) <= TOLERANCE * max(abs(fx), abs(fy)):
                    continue
            problems.append(f"line {line}, {name}: {x} committed, {y} reproduced")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
