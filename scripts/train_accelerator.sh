#!/usr/bin/env bash
# A larger 64 px face prior, trained from scratch on an accelerator in one prepared command, its weights brought
# back as float16 shards small enough to copy (the loader reads them).
#   1. a probe of PROBE_STEPS steps times one step on this device;
#   2. the run resumes for as many steps as fit MINUTES, annealing the learning rate over their last fifth
#      (half of each batch re-cropped, as docs/prior.md describes);
#   3. the EMA weights with the best mean held-out loss go to OUT/prior as float16 shards of at most 15 MiB,
#      with the run's log in OUT/log.jsonl. The run folder (checkpoint.pt) stays in RUN, outside OUT.
# The default network: the bundled prior's layout with 2 residual blocks per level and widths 32-64-128-256
# (17.0M parameters, 3.3x the bundled prior's); most of the added width sits at 8x8, so its CPU forward pass
# costs about 1.6x the bundled prior's (docs/prior.md). Measure what comes back here on the CPU:
#   PRIOR=OUT/prior PROCS=2 bash scripts/eval_prior.sh 100 docs/bench/prior-quality-large
# Usage: [DEVICE=cuda] [MINUTES=7] [BATCH=128] [PROBE_STEPS=200] [CHANNELS=32] [RES_BLOCKS=2] [MULT=1,2,4,8]
#        [SIZE=64] [RUN=runs/accelerator] bash scripts/train_accelerator.sh OUT [DATA, default ../shared/data/celeba-10k.tar]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/train_accelerator.sh OUT [DATA]" >&2; exit 2; }
out=$1
data=${2:-../shared/data/celeba-10k.tar}
run=${RUN:-runs/accelerator}
probe=${PROBE_STEPS:-200}
[ -e "$data" ] || { echo "train_accelerator.sh: no training data at $data" >&2; exit 2; }
[ ! -e "$run/checkpoint.pt" ] || { echo "train_accelerator.sh: $run already holds a run; remove it or set RUN" >&2; exit 2; }
common=(--data "$data" --out "$run" --device "${DEVICE:-cuda}" --batch "${BATCH:-128}" --size "${SIZE:-64}"
        --augment-fraction 0.5 --checkpoint-minutes 2)
hrdis train "${common[@]}" --steps "$probe" --channels "${CHANNELS:-32}" --res-blocks "${RES_BLOCKS:-2}" \
    --channel-mult "${MULT:-1,2,4,8}"
steps=$(python3 - "$run/log.jsonl" "$probe" "${MINUTES:-7}" <<'EOF'
import json, sys
last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
per_step = last["wall"] / max(1, last["step"])
print(int(sys.argv[2]) + max(1, int(float(sys.argv[3]) * 60 / max(per_step, 1e-3))))
EOF
)
echo "train_accelerator.sh: $(tail -n 1 "$run/log.jsonl"); training to step $steps"
# --max-minutes: a slower step than the probe's stops the run (with a checkpoint) instead of overrunning the budget
hrdis train "${common[@]}" --resume --steps "$steps" --lr-decay-steps $(( (steps - probe) / 5 )) \
    --max-minutes "$(python3 -c "print(1.3 * ${MINUTES:-7})")"
mkdir -p "$out"
python3 scripts/export_prior.py "$run/prior" "$out/prior" --max-shard-mb 15 \
    --history "trained from scratch by scripts/train_accelerator.sh on ${DEVICE:-cuda}: $steps steps of batch ${BATCH:-128}, lr 3e-4 annealed (cosine) over the last $(( (steps - probe) / 5 )), half of each batch re-cropped"
cp "$run/log.jsonl" "$out/log.jsonl"
ls -l "$out/prior"
