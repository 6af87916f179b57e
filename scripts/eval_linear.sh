#!/usr/bin/env bash
# The Table 1/9 analogue (issue 7): the linear suite (free-form inpainting 10-20% and 20-30%, x4 SR, 25% CS)
# on the fixed 100 evaluation faces (009901-010000), each method at its default preset. Resumable: re-run
# the same command to continue; methods may be added to the same OUT in later runs.
# Usage: [PROCS=2] bash scripts/eval_linear.sh [N, default 100] [METHODS, default hrdis,reddiff,ddrm,pigdm,tv,bicubic] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-100}
methods=${2:-hrdis,reddiff,ddrm,pigdm,tv,bicubic}
out=${3:-docs/bench/linear}
bench --suite linear --methods "$methods" --images ../shared/data/celeba-10k.tar --first 9901 --num-images "$n" \
    --precision bf16 --out "$out"
