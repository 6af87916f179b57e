#!/usr/bin/env bash
# The HRDIS paper's perceptual claims on the bundled prior, under the deep-feature measures of the
# `perceptual` extra (effnet_distance per image; effnet_frechet and effnet_kid per cell). Six resumable parts:
#   1. the linear suite, methods at their presets that cost at most about 15 s per image, on the first N
#      evaluation faces (009901-);
#   2. HRDIS against RED-diff and DPS (1000 NFE each) on the linear suite, on the first N_SLOW of them, one task
#      after another (inpaint-ff20 and sr4 were run first, as `--tasks inpaint-ff20,sr4`, into the same folder);
#   3. beta 0 / 0.2 / 1 on inpaint-ff20 and cs25, on the 16 tuning faces 009501-009516 (sr4 is in
#      docs/bench/ablate-beta-perceptual);
#   4. the 64 px learning rate 0.02 against Table 5's (0.1 inpainting, 0.5 SR and CS), same faces;
#   5. phase retrieval (4 restarts each): HRDIS, RED-diff, DAPS at its CPU preset and DPS, first N_PR faces
#      (DPS, about 4 minutes a face, was added after the other three had run on 100);
#   6. HRDIS's steps on CS 25%: N 300 (the preset) and 1000 against RED-diff's 1000 on the 16 tuning faces, then
#      N 1000 on the first N_SLOW evaluation faces (compare with part 2's RED-diff through --b-out).
# Usage: [PROCS=2] [SUFFIX=-NAME] [PARTS="1 2 3 4 5 6"] bash scripts/eval_perceptual.sh [N, default 32] [N_SLOW, default 16] [N_PR, default 8]
# SUFFIX is appended to every output folder: a folder holds one prior's rows (bench refuses another's),
# so a run after the bundled prior changes needs its own folders (e.g. SUFFIX=-STEPS, the prior's training steps).
# (needs the perceptual extra and ../shared/data/celeba-10k.tar)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-32}
n_slow=${2:-16}
n_pr=${3:-8}
faces=../shared/data/celeba-10k.tar
python3 -c 'from hrdis.experiments.perceptual import DeepFeatureDistance as D; D()' \
  || { echo "eval_perceptual.sh: install the perceptual extra first: pip install -e '.[perceptual]'" >&2; exit 2; }
for part in ${PARTS:-1 2 3 4 5 6}; do
  case $part in
  1) bench --suite linear --methods hrdis,ddrm,ddnm,diffpir,tv,bicubic --images $faces --first 9901 \
         --num-images "$n" --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-linear${SUFFIX:-} ;;
  2) bench --suite linear --methods hrdis,reddiff,dps --images $faces --first 9901 \
         --num-images "$n_slow" --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-1000nfe${SUFFIX:-} ;;
  3) sharded ablate --param beta --values 0,0.2,1 --tasks inpaint-ff20,cs25 --images $faces --first 9501 \
         --num-images 16 --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-beta${SUFFIX:-} ;;
  4) sharded ablate --param lr --values 0.02,0.1 --tasks inpaint-ff20 --images $faces --first 9501 \
         --num-images 16 --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-lr-inpaint${SUFFIX:-}
     sharded ablate --param lr --values 0.02,0.5 --tasks sr4,cs25 --images $faces --first 9501 \
         --num-images 16 --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-lr-sr-cs${SUFFIX:-} ;;
  5) bench --tasks phase-retrieval --methods hrdis,reddiff,daps-light,dps --images $faces --first 9901 \
         --num-images "$n_pr" --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-phase-retrieval${SUFFIX:-} ;;
  6) sharded ablate --param steps --values 300,1000 --tasks cs25 --images $faces --first 9501 \
         --num-images 16 --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-steps-cs${SUFFIX:-}
     sharded ablate --method reddiff --param steps --values 1000 --tasks cs25 --images $faces --first 9501 \
         --num-images 16 --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-steps-cs-reddiff${SUFFIX:-}
     sharded ablate --param steps --values 1000 --tasks cs25 --images $faces --first 9901 \
         --num-images "$n_slow" --figures 0 --precision "$PRECISION" --out docs/bench/perceptual-cs-hrdis-1000${SUFFIX:-} ;;
  esac
done
