#!/usr/bin/env bash
# Install hrdis (CPU PyTorch) and restore the bundled example face on the bundled prior:
# inpainting of a 24x24 box, x4 super-resolution and 25% compressed sensing.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet torch==2.13.0 -e .
mkdir -p out
for task in inpaint-box sr4 cs25; do
  hrdis solve --input examples/astronaut64.png --task "$task" --out "out/$task.png" --grid "out/$task-grid.png"
done
