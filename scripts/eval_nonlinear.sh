#!/usr/bin/env bash
# Nonlinear problems (issue 5) on held-out faces: HRDIS vs RED-diff on HDR and nonlinear deblurring, and
# the blind low-light example (docs/lowlight.png).
# Usage: [PROCS=2] bash scripts/eval_nonlinear.sh [N, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-8}
bench --tasks hdr,deblur-nonlinear --methods hrdis,reddiff,cr --images ../shared/data/celeba-10k.tar --first 9901 \
    --num-images "$n" --precision bf16 --out docs/bench/nonlinear
python scripts/lowlight_example.py --n "$n"
