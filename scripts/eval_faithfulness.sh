#!/usr/bin/env bash
# What the official variants change: HRDIS and RED-diff at Table 5's settings (lr 0.1 box inpainting, 0.5 x4 SR,
# the phase-retrieval preset), in the default and the official variant, and the beta ablation (0, 0.2, 1) in
# the official variant at the 64 px presets on box inpainting, x4 SR and nonlinear deblurring; on the tuning
# faces 009501 onwards. Resumable: re-run the same command to continue.
# Usage: [PROCS=2] bash scripts/eval_faithfulness.sh [N, default 16] [N_PHASE, faces for phase retrieval, default N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-16}
n_phase=${2:-$n}
common=(--images ../shared/data/celeba-10k.tar --first 9501 --num-images "$n" --precision "$PRECISION")
for variant in default official; do
  out=docs/bench/faithfulness-$variant
  bench --tasks inpaint-box --methods hrdis,reddiff --set lr=0.1 --variant "$variant" "${common[@]}" --out "$out"
  bench --tasks sr4 --methods hrdis,reddiff --set lr=0.5 --variant "$variant" "${common[@]}" --out "$out"
done
sharded ablate --param beta --values 0,0.2,1 --tasks inpaint-box,sr4,deblur-nonlinear --variant official \
  "${common[@]}" --out docs/bench/ablate-beta-official
for variant in default official; do
  bench --tasks phase-retrieval --methods hrdis,reddiff --variant "$variant" --images ../shared/data/celeba-10k.tar \
    --first 9501 --num-images "$n_phase" --precision "$PRECISION" --out docs/bench/faithfulness-$variant
done
# The official solver settings on the default operator (16 px padding at 64 px): separates the official phase
# retrieval operator's 64 px padding from the official solver's settings.
bench --tasks phase-retrieval --methods hrdis --set timestep_grid=strided --set update_first_step=false \
  --set result=before_last_update --set clamp_result=false --set loss_reduction=batch_mean \
  --set schedule_precision=float32 --images ../shared/data/celeba-10k.tar --first 9501 --num-images "$n_phase" \
  --precision "$PRECISION" --out docs/bench/faithfulness-official-solver

