#!/usr/bin/env bash
# The beta ablation (the paper's Fig. 9): beta in {0, 0.1, 0.2, 0.5, 1} at HRDIS's presets on
# box inpainting, x4 SR and nonlinear deblurring, on held-out faces. Plots: pip install 'hrdis[plots]'.
# Usage: [PROCS=2] bash scripts/eval_ablation.sh [N, default 8] [OUT, default docs/bench/ablate-beta-5]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-8}
out=${2:-docs/bench/ablate-beta-5}
args=(--param beta --values 0,0.1,0.2,0.5,1 --tasks inpaint-box,sr4,deblur-nonlinear
      --images ../shared/data/celeba-10k.tar --first 9901 --num-images "$n" --precision "$PRECISION" --out "$out")
sharded ablate "${args[@]}"
