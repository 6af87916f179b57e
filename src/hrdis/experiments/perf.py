"""Performance report (not a test): ``python -m hrdis.experiments.perf`` or ``hrdis perf``.

    python -m hrdis.experiments.perf --size 64 --prior runs/face64/prior --steps 20 --batches 1,4,16
    python -m hrdis.experiments.perf --size 256 --steps 3 --batches 1        # random-weight FFHQ-architecture UNet

For one prior and size it reports, as a Markdown table:

- HRDIS's time per step split into network (eps_theta forward, measured inside the solve), operator
  (forward + backward of the data term, timed alone) and optimiser (one Adam step on mu, timed alone);
  the remainder (noise, loss assembly, bookkeeping) is "other";
- the overhead ratio: HRDIS seconds per image / (N x one network forward at batch 1); target <= 1.10;
- throughput (images/s) of HRDIS at each batch size;
- peak memory of HRDIS and of DPS for the same number of steps at batch 1: the peak size of the tensors
  a solve creates (``TensorPeakMemory``; weights and inputs excluded, so the network's working memory
  is what is compared); target HRDIS <= 0.5 x DPS.

At 256 px without ``--prior`` the network is a random-weight UNet of the ffhq_10m architecture (93.6M
parameters; timing does not depend on the weights). Use few steps on a CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..operators import AveragePoolSR
from ..priors import ADM_PRESETS, Prior, UNetPrior, load_prior
from ..runtime import add_runtime_args, compile_prior, cpu_has_native_bf16, prior_device, prior_options
from ..unet import ADMConfig, ADMUNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def build_prior(args) -> Prior:
    options = prior_options(args)  # warns where bf16 would be emulated
    device, autocast = options["device"], options["autocast"]
    if args.prior:
        prior = load_prior(args.prior, device=device, autocast=autocast, channels_last=args.channels_last)
    else:  # random weights, the architecture of the public FFHQ checkpoint (or a small one below 256 px)
        cfg = dict(ADM_PRESETS["ffhq_10m"]) if args.size >= 256 else dict(
            image_size=args.size, num_channels=64, num_res_blocks=2, attention_resolutions=[16, 8],
            channel_mult=[1, 2, 3, 4], num_head_channels=32, learn_sigma=True, resblock_updown=True)
        cfg["image_size"] = args.size
        torch.manual_seed(0)
        unet = ADMUNet(ADMConfig.from_dict(cfg))
        prior = UNetPrior(unet.to(device), autocast=autocast, channels_last=args.channels_last,
                          source="random weights")
    if prior.image_size != args.size:
        raise ValueError(f"the prior works at {prior.image_size} px but --size is {args.size}")
    return compile_prior(prior) if args.compile else prior


class _TimedPrior(Prior):
    """Delegates to a prior, accumulating the wall time of its noise predictions."""

    def __init__(self, inner: Prior, device: torch.device):
        super().__init__()
        self.inner, self.device, self.seconds = inner, device, 0.0
        self.schedule, self.image_size, self.channels = inner.schedule, inner.image_size, inner.channels

    def eps(self, x_t, t):
        _sync(self.device)
        start = time.perf_counter()
        out = self.inner.eps(x_t, t)
        _sync(self.device)
        self.seconds += time.perf_counter() - start
        return out


def _median_time(fn, device, reps: int, best: bool = False):
    """Median wall time of ``reps`` calls (and, with ``best``, also the fastest)."""
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return (statistics.median(times), min(times)) if best else statistics.median(times)


def _problem(prior: Prior, size: int, batch: int, device: torch.device):
    op = AveragePoolSR(4)
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return op(x).to(device), op.to(device)


def measure_speed(prior: Prior, size: int, steps: int, batches: list[int], reps: int, solves: int = 3) -> dict:
    from ..solvers.hrdis import HRDISConfig, hrdis

    device = prior_device(prior)
    y, op = _problem(prior, size, 1, device)
    x = torch.randn(1, 3, size, size, device=device)
    with torch.no_grad():
        prior.eps(x, 500)  # warm-up (and compilation)
        forward, forward_best = _median_time(lambda: prior.eps(x, 500), device, reps, best=True)

    mu = op.pinv(y).clone().requires_grad_(True)
    adam = torch.optim.Adam([mu], lr=0.1, betas=(0.9, 0.99))

    def operator_pass():
        loss = 0.5 * (y - op(mu)).pow(2).flatten(1).mean(1).sum()
        loss.backward()

    operator_s = _median_time(operator_pass, device, max(reps, 5))
    optimiser_s = _median_time(adam.step, device, max(reps, 5))

    # The solve is repeated and the median taken, as for the forward: on a shared CPU single runs of a
    # few seconds vary by 10-40%, more than the overhead being measured.
    timed = _TimedPrior(prior, device)
    hrdis(y, op, timed, HRDISConfig(steps=1))  # warm-up of the solver path
    totals, network = [], []
    for _ in range(solves):
        timed.seconds = 0.0
        _sync(device)
        start = time.perf_counter()
        hrdis(y, op, timed, HRDISConfig(steps=steps))
        _sync(device)
        totals.append(time.perf_counter() - start)
        network.append(timed.seconds)
    total = statistics.median(totals)
    out = {"forward_s": forward, "steps": steps, "solves": solves, "step_s": total / steps,
           "network_s": statistics.median(network) / steps, "operator_s": operator_s, "optimiser_s": optimiser_s,
           "overhead_ratio": total / (steps * forward),
           "overhead_ratio_best": min(totals) / (steps * forward_best), "throughput": {}}
    out["other_s"] = out["step_s"] - out["network_s"] - operator_s - optimiser_s
    for b in batches:
        if b == 1:
            out["throughput"][b] = 1 / total
            continue
        yb, opb = _problem(prior, size, b, device)
        _sync(device)
        start = time.perf_counter()
        hrdis(yb, opb, prior, HRDISConfig(steps=steps))
        _sync(device)
        out["throughput"][b] = b / (time.perf_counter() - start)
    return out


class TensorPeakMemory(TorchDispatchMode):
    """``with TensorPeakMemory() as m: ...`` then ``m.peak_mb``: the peak total size of the tensor storages
    created inside the block and alive at the same time (autograd's saved activations included), on any
    device. It counts tensors, not the allocator's caches or the process's RSS, so it is exact and does
    not depend on what ran before; tensors that existed before the block (weights, inputs) are excluded."""

    def __init__(self):
        super().__init__()
        self.live: dict = {}
        self.current = self.peak = 0

    def _track(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        storage = t.untyped_storage()
        key = (storage.data_ptr(), str(t.device))
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del self.live[key]
                self.current -= entry[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            self._track(t)
        return out

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def measure_memory(prior: Prior, size: int, method: str, steps: int) -> float:
    """Peak tensor memory (MB) of one ``steps``-step solve at batch 1 (``TensorPeakMemory``)."""
    from ..solvers import get_method

    device = prior_device(prior)
    y, op = _problem(prior, size, 1, device)
    with TensorPeakMemory() as tracker:
        m = get_method(method)
        m.solver(y, op, prior, m.build_config({"steps": steps}))
    return tracker.peak_mb


def allocator() -> str:
    """Which malloc the process uses: on CPU, tcmalloc/jemalloc preloaded (LD_PRELOAD) speeds up the network
    by up to 1.6x in fp32, so timings should say which one they ran with."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if name in maps:
            return name
    return "system (glibc)"


def report(args, speed: dict, memory: dict, prior: Prior) -> str:
    ms = 1000.0
    rows = [
        ("prior", prior.describe()),
        ("device / precision / threads", f"{prior_device(prior)} / {args.precision}"
         f"{' / channels-last' if args.channels_last else ''}{' / compiled' if args.compile else ''} / "
         f"{torch.get_num_threads()}"),
        ("one network forward, B=1", f"{speed['forward_s'] * ms:.1f} ms"),
        ("memory allocator", allocator()),
        ("CPU with native bf16 (avx512_bf16 or AMX)", "yes" if cpu_has_native_bf16() else "no"),
        (f"HRDIS step, B=1 ({speed['steps']} steps, median of {speed['solves']} solves)",
         f"{speed['step_s'] * ms:.1f} ms"),
        ("- network (eps forward)", f"{speed['network_s'] * ms:.1f} ms"),
        ("- operator (data term fwd + bwd, sr4)", f"{speed['operator_s'] * ms:.2f} ms"),
        ("- optimiser (Adam step)", f"{speed['optimiser_s'] * ms:.2f} ms"),
        ("- other (noise, loss, bookkeeping)", f"{speed['other_s'] * ms:.2f} ms"),
        ("HRDIS time / (N x forward) (target <= 1.10)", f"{speed['overhead_ratio']:.3f}"),
        ("- the same from the fastest solve and the fastest forward", f"{speed['overhead_ratio_best']:.3f}"),
    ]
    rows += [(f"HRDIS throughput B={b}, N={speed['steps']} steps", f"{v:.3f} images/s ({v / speed['throughput'].get(1, v):.2f}x B=1)")
             for b, v in speed["throughput"].items()]
    if memory:
        h, d = memory["hrdis"], memory["dps"]
        rows += [(f"peak tensor memory HRDIS, B=1, {args.memory_steps} steps", f"{h:.1f} MB"),
                 (f"peak tensor memory DPS, B=1, {args.memory_steps} steps", f"{d:.1f} MB"),
                 ("HRDIS / DPS memory (target <= 0.5)", f"{h / d:.3f}" if d else "n/a")]
    lines = [f"### hrdis perf, {args.size}x{args.size}", "", "| quantity | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hrdis perf", description="Performance report of HRDIS (see hrdis.experiments.perf).")
    p.add_argument("--size", type=int, default=64, help="image size (64 or 256)")
    p.add_argument("--prior", help="a prior (folder, 'bundled' or .pt); default: random weights (FFHQ architecture at 256)")
    p.add_argument("--steps", type=int, default=20, help="HRDIS steps timed per run")
    p.add_argument("--batches", default="1,4,16", help="batch sizes for the throughput")
    p.add_argument("--reps", type=int, default=9, help="repetitions of the single-forward timing")
    p.add_argument("--solves", type=int, default=3, help="repetitions of the timed HRDIS solve (median reported)")
    p.add_argument("--memory-steps", type=int, default=3, help="steps of HRDIS and DPS for the memory comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the memory comparison")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    p.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    add_runtime_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        torch.set_num_threads(args.threads)
        prior = build_prior(args)
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
        if args.solves < 1 or args.reps < 1:
            raise ValueError("--solves and --reps must be at least 1")
        speed = measure_speed(prior, args.size, args.steps, batches, args.reps, args.solves)
        memory = {} if args.no_memory else {m: measure_memory(prior, args.size, m, args.memory_steps)
                                            for m in ("hrdis", "dps")}
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"hrdis perf: error: {exc}", file=sys.stderr)
        return 2
    print(report(args, speed, memory, prior))
    return 0


if __name__ == "__main__":
    sys.exit(main())
