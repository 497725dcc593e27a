#!/bin/bash
# Interleaved before/after bench for issue 18 (same machine, same data, nothing else running).
export LEVELSET_DATA_DIR=/work/shared/data
cd /work/main
for run in before-1 after-2 before-2; do
    bin=/tmp/levelset-${run%-*}
    $bin bench --models poly,mnist,cifar10,ptb --repeats 5 --dss-repeats 0 --out /tmp/bench18/$run.json > /tmp/bench18/$run.log 2>&1
done
echo done > /tmp/bench18/DONE
