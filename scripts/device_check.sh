#!/usr/bin/env bash
# The checks only an accelerator can make, as one command for a lent GPU machine (about 9 minutes on an H200):
#   1. every method on the GPU against the CPU (tests/test_device.py) and the runtime tests, with --device cuda;
#   2. `hrdis perf` at 256 px on the FFHQ architecture (random weights): HRDIS's step and solve times and its
#      memory against DPS's;
#   3. a larger prior trained there (scripts/train_accelerator.sh, MINUTES of training), brought back as
#      float16 shards.
# Everything it prints goes to OUT/log.txt; the prior to OUT/large/prior (with OUT/large/log.jsonl): 7 files.
# The machine has PyTorch but not this package's pinned one, so it runs from the source tree (PYTHONPATH), and
# the training faces must travel inside the checkout. From the repository root, here:
#   mkdir -p .device && cp ../shared/data/celeba-10k.tar .device/ && echo /.device/ >> .git/info/exclude
# then the device tool's run with command "bash scripts/device_check.sh", carry [".device"], timeout_s 590.
# Usage: [OUT=folder] [MINUTES=4] [PARTS="tests perf train"] bash scripts/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
mkdir -p "$out" /tmp/hrdis-bin
log=$out/log.txt
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
printf '#!/bin/sh\nexec python3 -m hrdis "$@"\n' > /tmp/hrdis-bin/hrdis && chmod +x /tmp/hrdis-bin/hrdis
export PATH=/tmp/hrdis-bin:$PATH
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'; } 2>&1 | tee -a "$log"
status=0
for part in ${PARTS:-tests perf train}; do
  echo "== $part $(date +%T)" | tee -a "$log"
  case $part in
  tests) python3 -m pytest -q -p no:cacheprovider --device cuda tests/test_device.py tests/test_runtime.py \
             2>&1 | tee -a "$log" || status=1 ;;
  perf) hrdis perf --size 256 --device cuda --precision bf16 2>&1 | tee -a "$log" || status=1 ;;
  train) MINUTES=${MINUTES:-4} RUN=/tmp/hrdis-run bash scripts/train_accelerator.sh "$out/large" \
             .device/celeba-10k.tar 2>&1 | grep -v '^train:' | tee -a "$log" || status=1 ;;
  *) echo "device_check.sh: unknown part $part (tests, perf, train)" | tee -a "$log"; status=2 ;;
  esac
done
echo "== done $(date +%T), status $status" | tee -a "$log"
exit $status
