#!/usr/bin/env bash
# Nonlinear problems on held-out faces: the Table 4/11 analogue (phase retrieval, HDR, nonlinear
# deblurring), HRDIS against RED-diff at their default presets, then the blind low-light example
# (docs/lowlight.png). Phase retrieval dominates the cost: about 4.5 min of one core per face for the pair.
# Usage: [PROCS=2] bash scripts/eval_nonlinear.sh [N, default 16] [METHODS, default hrdis,reddiff]
#        [OUT, default docs/bench/nonlinear-suite]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-16}; methods=${2:-hrdis,reddiff}; out=${3:-docs/bench/nonlinear-suite}
bench --suite nonlinear --methods "$methods" --images ../shared/data/celeba-10k.tar --first 9901 \
    --num-images "$n" --precision "$PRECISION" --out "$out"
python scripts/lowlight_example.py --n 8 --precision "$PRECISION" --threads 2
