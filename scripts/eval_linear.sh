#!/usr/bin/env bash
# The Table 1/9 analogue: the linear suite (free-form inpainting 10-20% and 20-30%, x4 SR, 25% CS)
# on the fixed 100 evaluation faces (009901-010000), each method at its default preset. Resumable: re-run
# the same command to continue; methods may be added to the same OUT in later runs.
# Usage: [PROCS=2] bash scripts/eval_linear.sh [N, default 100] [METHODS, default hrdis,reddiff,ddrm,pigdm,tv,bicubic] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/eval_suite.sh linear "${1:-100}" "${2:-hrdis,reddiff,ddrm,pigdm,tv,bicubic}" "${3:-docs/bench/linear}"
