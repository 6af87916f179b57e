#!/usr/bin/env bash
# Diversity (the paper's Fig. 5; issue 7): one held-out face's x16 SR measurement restored with several
# seeds by HRDIS and by RED-diff; per-pixel std maps and the mean pairwise RMSE in docs/bench/diversity/.
# Usage: bash scripts/eval_diversity.sh [FACE, default 009901] [SEEDS, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
face=${1:-009901}; seeds=${2:-8}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python -c "import sys, tarfile; tarfile.open(sys.argv[1]).extract('celebA/$face.jpg', sys.argv[2])" \
    ../shared/data/celeba-10k.tar "$tmp"
for method in hrdis reddiff; do
  hrdis diversity --input "$tmp/celebA/$face.jpg" --resize --task sr16 --method "$method" --seeds "$seeds" \
      --precision bf16 --out "docs/bench/diversity/$method"
done
