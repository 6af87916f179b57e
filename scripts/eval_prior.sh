#!/usr/bin/env bash
# Quality bars of the bundled prior (issue 4), on held-out CelebA faces 009901-010000:
# HRDIS vs total variation (24x24 box inpainting) and vs bicubic (x4 SR), plus a 64-sample DDIM grid.
# Usage: [PROCS=2] bash scripts/eval_prior.sh [N_IMAGES, default 100] [OUT]   (needs ../shared/data/celeba-10k.tar)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-100}
out=${2:-docs/bench/prior-quality}
bench --tasks inpaint-box,sr4 --methods hrdis,tv,bicubic --images ../shared/data/celeba-10k.tar \
    --first 9901 --num-images "$n" --precision "$PRECISION" --out "$out"
hrdis sample --n 64 --steps 50 --seed 0 --precision "$PRECISION" --out docs/samples64.png
