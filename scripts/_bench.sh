# Sourced by the eval_*.sh scripts: `bench ARGS...` runs `hrdis bench ARGS...`, sharded over $PROCS
# processes with torchrun when PROCS > 1 (on 2 CPU cores, PROCS=2 with one thread each is the fastest).
bench() {
  if [ "${PROCS:-1}" -gt 1 ]; then
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node "$PROCS" -m hrdis bench "$@"
  else
    hrdis bench "$@"
  fi
}
