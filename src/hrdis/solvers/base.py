"""What every solver shares: its result type, input checks, and the per-step record."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..operators import Operator
from ..priors import Prior


@dataclass
class SolveResult:
    """A restored image and how it was obtained.

    ``image``: (B, 3, H, W) in [-1, 1]. ``history``: one dict per step (loss terms, timestep, and
    PSNR when a reference was given). ``nfe``: network evaluations. ``backprop``: whether the
    solver differentiated through the network (memory and time cost). ``extras``: what a solver or
    ``solve`` adds beyond these (e.g. a blind solver's estimated gain, the residual of each restart).
    """

    image: torch.Tensor
    init: torch.Tensor
    history: list[dict] = field(default_factory=list)
    nfe: int = 0
    backprop: bool = False
    method: str = ""
    params: dict = field(default_factory=dict)
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)


def check_inputs(y: torch.Tensor, operator: Operator, prior: Prior | None, steps: int) -> None:
    """One-line errors for what would otherwise fail deep inside torch."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"the measurement must be a torch.Tensor, got {type(y).__name__}")
    if not torch.isfinite(y).all():
        raise ValueError("the measurement contains NaN or Inf values; clean or re-read the observation")
    check_positive_int("steps", steps)
    x_shape = operator.pinv(y[:1]).shape
    channels = getattr(prior, "channels", 3)
    if x_shape[1] != channels:
        raise ValueError(f"the prior works on {channels}-channel images but the measurement describes "
                         f"{x_shape[1]}-channel ones; convert the image to RGB")
    size = getattr(prior, "image_size", None)
    if size is not None:
        if tuple(x_shape[-2:]) != (size, size):
            raise ValueError(f"the prior works on {size}x{size} images but this measurement and operator describe "
                             f"{x_shape[-2]}x{x_shape[-1]} images; use a prior of that size or resize the input")


def check_unit_interval(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0 and not math.isnan(value)):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def psnr_tensor(x: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (computed on the [0, 1] scale), averaged over the batch.
    A cheap torch version for per-step histories; reported figures use ``hrdis.metrics``."""
    mse = ((x.clamp(-1, 1) - reference) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1.0 / mse)).mean())


def squared_misfit(y: torch.Tensor, forward, x: torch.Tensor) -> torch.Tensor:
    """(B,) mean((y - A(x))^2) per image: the data term of the optimisation solvers (HRDIS and its family
    take half of it, summed over the batch, so an image's gradient does not depend on the batch size)."""
    return (y - forward(x)).pow(2).flatten(1).mean(1)
