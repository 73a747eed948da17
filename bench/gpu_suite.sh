#!/usr/bin/env bash
# The one-shot GPU suite (bench/gpu_suite.py; docs/gpu_suite.md): training throughput of medsyn
# vs the plain loop, a timed slice of the 388-epoch cxr3 AC-GAN schedule, and the evaluation
# time of 10,000 images, in at most 9 minutes on one H100/H200-class GPU, into ONE JSON
# ($OUT/gpu_suite.json when OUT is set, else gpu_suite.json; --out wins).
#
#   python bench/gpu_suite.py pack --out gpu_data/          # first, where the real data are
#   MEDSYN_DATA_ROOT=gpu_data bash bench/gpu_suite.sh       # then, on the GPU machine
#   bash bench/gpu_suite.sh --dry-run --data-root gpu_data  # CPU smoke run at toy sizes
#
# It runs from the repository root: a relative MEDSYN_DATA_ROOT or OUT is taken from the
# directory it was called from; paths given as options are relative to the repository root.
set -euo pipefail
caller=$(pwd)
cd "$(dirname "$0")/.."
for var in MEDSYN_DATA_ROOT OUT; do
    value=${!var:-}
    if [[ -n "$value" && "$value" != /* ]]; then
        export "$var=$caller/$value"
    fi
done
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" bench/gpu_suite.py "$@"
