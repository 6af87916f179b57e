"""Where and how the network runs: device selection, network precision, channels-last, torch.compile.

Only the network is affected: ``--precision`` runs it under autocast (``UNetPrior``/``DiffusersPrior``
return float32), while the solvers' own work (operator, Adam, noise) stays float32. Noise is always drawn
on the CPU from per-image generators and then moved, so results do not depend on the device's RNG.
"""

from __future__ import annotations

import argparse
import warnings

import torch

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): cuda if available, else mps, else cpu. Asking for an unavailable device is an error."""
    name = "auto" if name is None else str(name)
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available in this PyTorch build or machine; use cpu or auto")
    if device.type == "mps" and not mps_ok:
        raise ValueError(f"--device {name}: Apple MPS is not available here; use cpu or auto")
    return device


def network_dtype(precision: str = "fp32", bf16: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``--precision`` (``--bf16`` is an alias of ``--precision bf16``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if bf16 and precision not in ("fp32", "bf16"):
        raise ValueError(f"--bf16 contradicts --precision {precision}")
    return torch.bfloat16 if bf16 else PRECISIONS[precision]


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cuda, cuda:N, mps or cpu (default auto: cuda, else mps, else cpu)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="the network's precision under autocast (the solver itself stays float32)")
    p.add_argument("--channels-last", action="store_true", help="run the network in channels-last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow first step)")


def prior_options(args) -> dict:
    """``load_prior`` keyword arguments from the runtime flags."""
    device = resolve_device(getattr(args, "device", "auto"))
    autocast = network_dtype(getattr(args, "precision", "fp32"), getattr(args, "bf16", False))
    if device.type == "cpu" and autocast == torch.bfloat16 and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bf16 (avx512_bf16 or AMX), so --precision bf16 is emulated and "
                      "runs about 3x slower than fp32 (hrdis perf, bundled prior); use --precision fp32",
                      stacklevel=2)
    return dict(device=device, autocast=autocast, channels_last=getattr(args, "channels_last", False))


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 matrix products natively; without, autocast to bf16 costs time."""
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def compile_prior(prior):
    """Compile the prior's network in place with torch.compile (the module and its attributes stay)."""
    net = getattr(prior, "unet", None)
    if net is None:
        raise ValueError(f"{type(prior).__name__} has no network to compile")
    net.compile()
    return prior


def prior_precision(prior) -> str:
    """The ``--precision`` name of the prior's autocast dtype ("fp32" when it has none)."""
    dtype = getattr(prior, "autocast", None)
    return {d: name for name, d in PRECISIONS.items()}.get(dtype, str(dtype))


def prior_device(prior) -> torch.device:
    for t in list(prior.parameters()) + list(prior.buffers()):
        return t.device
    return torch.device("cpu")
