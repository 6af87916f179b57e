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
# The network's precision in every eval script: bf16 where the CPU computes it natively (about half the time of
# fp32), else fp32 (emulated bf16 is slower than fp32). PRECISION=fp32|bf16 overrides; bench rows record it.
PRECISION=${PRECISION:-$(python3 -c 'from hrdis.runtime import cpu_has_native_bf16 as f; print("bf16" if f() else "fp32")')}
