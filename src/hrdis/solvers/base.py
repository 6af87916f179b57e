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


def per_image_seeds(seed: int | list[int], batch: int) -> list[int]:
    """The seed of each image of a batch: an int s gives s, s + 1, ..., s + B - 1 (so image b of a batch
    solved with seed s equals a single solve with seed s + b); a list gives one seed per image."""
    if isinstance(seed, bool) or not isinstance(seed, (int, list, tuple)):
        raise ValueError(f"seed must be an integer or one integer per image, got {seed!r}")
    if isinstance(seed, int):
        return [seed + b for b in range(batch)]
    if len(seed) != batch or not all(isinstance(s, int) and not isinstance(s, bool) for s in seed):
        raise ValueError(f"seed lists must hold one integer per image ({batch}), got {list(seed)!r}")
    return list(seed)


class BatchNoise:
    """Gaussian noise drawn image by image from one CPU generator per image, so that image b's noise
    depends only on its own seed and not on the batch it is solved in: a batch of B restores exactly
    as B single solves at seeds ``per_image_seeds(seed, B)`` (same draws, same order)."""

    def __init__(self, seed: int | list[int], batch: int):
        self.seeds = per_image_seeds(seed, batch)
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]

    def randn(self, shape, device: torch.device | str | None = None) -> torch.Tensor:
        """(B, ...) standard normal noise, drawn on the CPU (reproducible across devices), then moved."""
        shape = tuple(shape)
        if shape[0] != len(self.generators):
            raise ValueError(f"noise for a batch of {shape[0]} from {len(self.generators)} per-image generators")
        noise = torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in self.generators])
        return noise if device is None else noise.to(device)


def randn(shape, generator: "BatchNoise | torch.Generator | None", device=None) -> torch.Tensor:
    """Standard normal noise of ``shape`` from a ``BatchNoise`` (per image) or a plain generator (whole batch)."""
    if isinstance(generator, BatchNoise):
        return generator.randn(shape, device)
    noise = torch.randn(tuple(shape), generator=generator)
    return noise if device is None else noise.to(device)
