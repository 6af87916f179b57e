#!/usr/bin/env bash
# Peer methods on held-out faces: inpainting (free-form 20-30%), x4 SR and 25% CS, then phase
# retrieval, at each method's default preset. The methods that backpropagate through the network for
# 1000 steps (DPS) or 300 iterations of a 3-step DDIM (DMPlug) cost ~20x HRDIS here, so they run on fewer faces.
# Usage: [PROCS=2] bash scripts/eval_peers.sh [N, default 6] [N_BACKPROP, default 2] [N_PHASE, default 2] [OUT]
# (OUT, default docs/bench/peers, gets the suffixes -backprop and -phase for the second and third runs)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
n=${1:-6}; n_backprop=${2:-2}; n_phase=${3:-2}; out=${4:-docs/bench/peers}
data=(--images ../shared/data/celeba-10k.tar --first 9901 --precision "$PRECISION")
bench --tasks inpaint-ff20,sr4,cs25 --methods hrdis,reddiff,drddim,ddrm,pigdm,ddim "${data[@]}" \
    --num-images "$n" --out "$out"
bench --tasks inpaint-ff20,sr4,cs25,phase-retrieval --methods hrdis,dps,dmplug "${data[@]}" \
    --num-images "$n_backprop" --out "$out-backprop"
bench --tasks phase-retrieval --methods hrdis,reddiff,drddim "${data[@]}" --num-images "$n_phase" \
    --out "$out-phase"
