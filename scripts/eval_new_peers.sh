#!/usr/bin/env bash
# DAPS, DiffPIR and DDNM against HRDIS and the paper's peers, on the evaluation faces (009901-), each method at
# its preset; pair them with the 100-face folders of the other methods with `scripts/paired.py --b-out`.
# Resumable parts:
#   noisy      DiffPIR and DDNM+ on the noisy suite (free-form inpainting 20-30% under four noise models), N faces
#              (DiffPIR and DDNM on the linear suite: part 1 of scripts/eval_perceptual.sh)
#   nonlinear  DAPS at its CPU preset (daps-light, 100 NFE) on the nonlinear suite, N faces; DAPS-1K on N_1K
#   cost       quality against network evaluations on inpaint-ff20 and sr4, first N_COST faces: every method's
#              steps swept around its preset (the presets' own rows come from scripts/eval_perceptual.sh), then
#              python scripts/quality_vs_cost.py draws docs/bench/cost-quality${SUFFIX:-}/quality_vs_nfe.png;
#              COST_TASKS=cs25 COST_OUT=docs/bench/cost-quality-cs25 sweeps other linear-suite tasks into their own folder
#   cost-nonlinear  the same for the nonlinear suite (HRDIS at N 100 and 1000 on HDR and the nonlinear blur, 16 faces; the
#              other points are rows of the nonlinear suite and the parts above), in docs/bench/cost-quality-nonlinear
#   cost-noisy the same for the noisy suite's four columns, first N_COST faces (the suite's presets' rows come from
#              scripts/eval_suite.sh noisy and the noisy part above; RED-diff, DPS and DAPS run their presets here),
#              in docs/bench/cost-quality-noisy
#   cost-pr    phase retrieval's steps (every run keeps its restarts), first N_COST faces, and HRDIS at N 1000 on N faces,
#              in docs/bench/cost-quality-pr
#   dps-pr     DPS on phase retrieval (4 restarts x 1000 NFE with backprop: about 6 min a face here), N_DPS faces
#   tune       settings the papers give none of or give for 256 px, on 8 tuning faces (009501-): DiffPIR's lambda and
#              zeta on CS 25%; DAPS-light's Langevin lr (and steps) on HDR and lr on the nonlinear blur (one folder per setting)
# Usage: [PROCS=2] [SUFFIX=-NAME] [PARTS="noisy cost nonlinear cost-nonlinear cost-noisy cost-pr dps-pr tune"] bash scripts/eval_new_peers.sh [N=32] [N_1K=16] [N_COST=8] [N_DPS=4]
# SUFFIX is appended to every output folder: a folder holds one prior's rows (bench refuses another's),
# so a run after the bundled prior changes needs its own folders (e.g. SUFFIX=-STEPS, the prior's training steps).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-32}; n_1k=${2:-16}; n_cost=${3:-8}; n_dps=${4:-4}
faces=../shared/data/celeba-10k.tar
common=(--images $faces --first 9901 --figures 0 --precision "$PRECISION")
# sweep_steps OUT TASKS "METHOD STEPS,..." ...: one steps ablation per method on the first N_COST faces, in OUT/METHOD
sweep_steps() {
  local out=$1 tasks=$2; shift 2
  for sweep in "$@"; do
    set -- $sweep
    sharded ablate --param steps --values "$2" --method "$1" --tasks "$tasks" --num-images "$n_cost" \
        --no-plots "${common[@]}" --out "$out/$1"
  done
}
for part in ${PARTS:-noisy cost nonlinear cost-nonlinear dps-pr tune}; do
  case $part in
  noisy) bench --suite noisy --methods diffpir,ddnm-plus --num-images "$n" "${common[@]}" --out docs/bench/peers-noisy${SUFFIX:-} ;;
  nonlinear)
    bench --suite nonlinear --methods daps-light --num-images "$n" "${common[@]}" --out docs/bench/peers-nonlinear${SUFFIX:-}
    bench --suite nonlinear --methods daps --num-images "$n_1k" "${common[@]}" --out docs/bench/peers-nonlinear-1k${SUFFIX:-} ;;
  cost)
    out=${COST_OUT:-docs/bench/cost-quality${SUFFIX:-}}
    tasks=${COST_TASKS:-inpaint-ff20,sr4}
    sweep_steps "$out" "$tasks" "hrdis 30,300,1000" "reddiff 100,300" "dps 100,300" "ddrm 20,50" "diffpir 20,50,100"
    bench --tasks "$tasks" --methods daps-light,daps --num-images "$n_cost" "${common[@]}" --out "$out/daps"
    python3 scripts/quality_vs_cost.py docs/bench/perceptual-linear${SUFFIX:-} docs/bench/perceptual-1000nfe${SUFFIX:-} "$out"/*/ \
        --tasks "$tasks" --out "$out" ;;
  cost-nonlinear)
    # the presets' rows come from the nonlinear suite, RED-diff's steps ablation and the runs above; HRDIS adds N 100, 1000
    out=docs/bench/cost-quality-nonlinear${SUFFIX:-}
    sharded ablate --param steps --values 100,1000 --method hrdis --tasks hdr,deblur-nonlinear --num-images 16 --no-plots \
        "${common[@]}" --out "$out/hrdis"
    python3 scripts/quality_vs_cost.py docs/bench/nonlinear-suite${SUFFIX:-} docs/bench/nonlinear-suite-reddiff-steps${SUFFIX:-} \
        docs/bench/perceptual-phase-retrieval${SUFFIX:-} docs/bench/peers-nonlinear${SUFFIX:-} docs/bench/peers-nonlinear-1k${SUFFIX:-} \
        "$out/hrdis" --tasks phase-retrieval,hdr,deblur-nonlinear --out "$out" ;;
  cost-noisy)
    out=docs/bench/cost-quality-noisy${SUFFIX:-}
    tasks=$(python3 -c 'from hrdis.experiments.bench import SUITES; print(",".join(SUITES["noisy"][1]))')
    sweep_steps "$out" "$tasks" "hrdis 30,300,1000" "ddrm 20,50" "pigdm 20,50" "diffpir 50,100" "ddnm-plus 20,50"
    # the other plots' methods at their presets (the noisy suite's folders hold HRDIS, DDRM, PiGDM, DiffPIR, DDNM+)
    bench --suite noisy --methods reddiff,dps,daps-light,daps --num-images "$n_cost" "${common[@]}" --out "$out/presets"
    python3 scripts/quality_vs_cost.py docs/bench/noisy${SUFFIX:-} docs/bench/peers-noisy${SUFFIX:-} "$out"/*/ \
        --tasks "$tasks" --out "$out" ;;
  cost-pr)
    out=docs/bench/cost-quality-pr${SUFFIX:-}
    # HRDIS at N 1000 spends DAPS-1K's 4,048 evaluations: on N faces, to pair with DAPS-1K's rows (first, so that the
    # sweep's call rewrites the folder's tables for every step count)
    sharded ablate --param steps --values 1000 --method hrdis --tasks phase-retrieval --num-images "$n" \
        --no-plots "${common[@]}" --out "$out/hrdis"
    sweep_steps "$out" phase-retrieval "hrdis 100,1000" "reddiff 100,300" "dps 100,300"
    python3 scripts/quality_vs_cost.py docs/bench/perceptual-phase-retrieval${SUFFIX:-} docs/bench/peers-nonlinear${SUFFIX:-} \
        docs/bench/peers-nonlinear-1k${SUFFIX:-} "$out"/*/ --tasks phase-retrieval --out "$out" ;;
  dps-pr) bench --tasks phase-retrieval --methods dps --num-images "$n_dps" "${common[@]}" --out docs/bench/peers-nonlinear-dps${SUFFIX:-} ;;
  tune)
    tuning=(--images $faces --first 9501 --num-images 8 --figures 0 --precision "$PRECISION")
    out=docs/bench/tune-peers${SUFFIX:-}
    for lz in "1 0.3" "1 1.0" "7 0.3" "7 1.0" "50 0.3" "50 1.0"; do
      set -- $lz
      bench --tasks cs25 --methods diffpir --set lam=$1 --set zeta=$2 "${tuning[@]}" --out "$out/diffpir-cs25-lam$1-zeta$2"
    done
    for lr in 5e-6 1e-5 2e-5 1e-4 5e-4; do
      bench --tasks hdr --methods daps-light --set lr=$lr "${tuning[@]}" --out "$out/daps-light-hdr-lr$lr"
    done
    bench --tasks hdr --methods daps-light --set langevin_steps=300 "${tuning[@]}" --out "$out/daps-light-hdr-langevin300"
    for lr in 1e-5 5e-5 2.5e-4 1e-3; do
      bench --tasks deblur-nonlinear --methods daps-light --set lr=$lr "${tuning[@]}" --out "$out/daps-light-nlblur-lr$lr"
    done ;;
  esac
done
