#!/usr/bin/env bash
# Diversity (the paper's Fig. 5): one held-out face's x16 SR measurement restored with several
# seeds by HRDIS and by RED-diff; per-pixel std maps and the mean pairwise RMSE in docs/bench/diversity/.
# Usage: bash scripts/eval_diversity.sh [FACE, default 009901] [SEEDS, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bench.sh
face=${1:-009901}; seeds=${2:-8}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python - ../shared/data/celeba-10k.tar "celebA/$face.jpg" "$tmp" <<'PY'
import sys, tarfile
tar, name, dest = sys.argv[1:]
try:
    tarfile.open(tar).extract(name, dest)
except KeyError:
    sys.exit(f"eval_diversity.sh: no {name} in {tar}; give a face number such as 009901")
PY
for method in hrdis reddiff; do
  hrdis diversity --input "$tmp/celebA/$face.jpg" --resize --task sr16 --method "$method" --seeds "$seeds" \
      --precision "$PRECISION" --out "docs/bench/diversity/$method"
done
