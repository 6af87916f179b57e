#!/usr/bin/env bash
# The learning-rate sweep behind the 64 px presets (tasks.INPAINT_64, SR_64, CS_64): HRDIS at Table 5's other
# settings, lr varied, on 16 faces held out from training AND kept apart from the evaluation faces
# (009501-009516; evaluation uses 009901-010000), with the prior-free baselines on the same faces.
# Usage: [PROCS=2] bash scripts/tune_lr.sh [N, default 16] [OUT, default docs/bench/tune-lr]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-16}
out=${2:-docs/bench/tune-lr}
faces=(--images ../shared/data/celeba-10k.tar --first 9501 --num-images "$n" --precision bf16)
bench --tasks inpaint-box,inpaint-ff20,sr4,cs25 --methods tv,bicubic "${faces[@]}" --figures 0 --out "$out/baselines"
sharded ablate --param lr --values 0.01,0.02,0.05,0.1,0.2 --tasks inpaint-box,inpaint-ff20 "${faces[@]}" \
    --out "$out/inpaint"
sharded ablate --param lr --values 0.01,0.02,0.05,0.1,0.2,0.5 --tasks sr4,cs25 "${faces[@]}" --out "$out/sr-cs"
sharded ablate --param lr --values 0.01,0.02,0.05,0.1 --tasks hdr,deblur-nonlinear "${faces[@]}" --out "$out/nonlinear"
