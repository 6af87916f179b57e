#!/usr/bin/env bash
# One of the paper's table analogues, `hrdis bench --suite SUITE`, on the fixed evaluation faces
# (009901 onwards), each method at its default preset. Resumable: re-run the same command to continue;
# methods may be added to the same OUT in later runs (then `--render-only` tables them all).
# Suites: linear (Table 1/9), ffhq (Table 2/10), nonlinear (Table 4/11), noisy (App. C.2), deblur.
# Usage: [PROCS=2] bash scripts/eval_suite.sh SUITE [N, default 100] [METHODS, default hrdis,ddrm,tv]
#        [OUT, default docs/bench/SUITE]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/eval_suite.sh SUITE [N] [METHODS] [OUT]; SUITE is linear, ffhq, nonlinear, noisy or deblur" >&2
  exit 2
fi
suite=$1
n=${2:-100}
methods=${3:-hrdis,ddrm,tv}
out=${4:-docs/bench/$suite}
bench --suite "$suite" --methods "$methods" --images ../shared/data/celeba-10k.tar --first 9901 --num-images "$n" \
    --precision "$PRECISION" --out "$out"
