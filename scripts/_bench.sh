# Sourced by the eval_*.sh scripts: `sharded SUBCOMMAND ARGS...` runs `hrdis SUBCOMMAND ARGS...` (bench or
# ablate), sharded over $PROCS processes with torchrun when PROCS > 1 (on 2 CPU cores, PROCS=2 with one
# thread each is the fastest). `bench ARGS...` is `sharded bench ARGS...`.
sharded() {
  if [ "${PROCS:-1}" -gt 1 ]; then
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node "$PROCS" -m hrdis "$@"
  else
    hrdis "$@"
  fi
}
bench() { sharded bench "$@"; }
