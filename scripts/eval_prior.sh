#!/usr/bin/env bash
# Quality bars of the bundled prior, on held-out CelebA faces 009901-010000:
# HRDIS vs total variation (24x24 box inpainting) and vs bicubic (x4 SR) on three face crops of the same faces
# (celeba: the prior's training crop; tight: the face fills about 20% more of the frame, about FFHQ's alignment;
# loose: about 20% less), one resumable bench folder per crop, then a 64-sample DDIM grid.
# Usage: [PROCS=2] [PRIOR=FOLDER] [CROPS="celeba tight loose"] [STEPS=N] [SAMPLES=0] bash scripts/eval_prior.sh [N_IMAGES, default 100] [OUT]
#   OUT (default docs/bench/prior-quality) holds the celeba crop's rows, OUT-tight and OUT-loose the others';
#   each folder gets paired.txt (HRDIS minus TV and minus bicubic, per image). STEPS overrides every method's
#   steps (quick checks only); SAMPLES=0 skips the sample grid; PRIOR evaluates other weights than the bundled
#   prior (e.g. a training run's RUN/prior; give it its own OUT: a folder holds one prior's rows).   (needs ../shared/data/celeba-10k.tar)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-100}
out=${2:-docs/bench/prior-quality}
for crop in ${CROPS:-celeba tight loose}; do
  dir=$out
  [ "$crop" = celeba ] || dir=$out-$crop
  bench --tasks inpaint-box,sr4 --methods hrdis,tv,bicubic --images ../shared/data/celeba-10k.tar \
      --first 9901 --num-images "$n" --crop "$crop" ${STEPS:+--steps "$STEPS"} ${PRIOR:+--prior "$PRIOR"} --precision "$PRECISION" --out "$dir"
  { python3 scripts/paired.py "$dir" hrdis tv; python3 scripts/paired.py "$dir" hrdis bicubic; } > "$dir/paired.txt"
  cat "$dir/paired.txt"
done
if [ "${SAMPLES:-1}" != 0 ]; then
  grid=docs/samples64.png
  [ -z "${PRIOR:-}" ] || grid=$out/samples64.png  # the package's grid shows the bundled prior only
  hrdis sample --n 64 --steps 50 --seed 0 --precision "$PRECISION" ${PRIOR:+--prior "$PRIOR"} --out "$grid"
fi
