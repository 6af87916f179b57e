"""Measurement noise models, separate from the operators: any operator's y can take any noise.

A noise model returns a noisy copy of y, deterministic for a seed (it draws from a local CPU
generator, then moves to y's device, so results do not depend on the device or on global RNG
state). ``spec()`` gives the string form that ``parse_noise`` reads back, e.g. "gaussian:0.05".

- ``GaussianNoise(sigma)``: y + sigma n, sigma in [-1, 1] image units (0.05 = 2.5% of the range);
- ``PoissonNoise(level)``: shot noise as in the DPS code, Poisson(255 level I) / (255 level) on the
  intensity I = (y + 1) / 2; higher level = more photons = less noise;
- ``SpeckleNoise(sigma)``: multiplicative, I (1 + sigma n).

Poisson and speckle noise act on intensities, so they assume image-like measurements (B, C, H, W)
in [-1, 1] (denoising, inpainting, super-resolution, deblurring, HDR, low light) and clamp their result
to [-1, 1]. Compressed-sensing measurements and phase-retrieval magnitudes are not images: they are
refused (values far outside [-1, 1] say so); use Gaussian noise there.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GaussianNoise", "NoNoise", "Noise", "PoissonNoise", "SpeckleNoise", "parse_noise"]

VALID_SPECS = "none, gaussian:SIGMA, poisson:LEVEL or speckle:SIGMA (e.g. gaussian:0.05)"


def _generator(seed: int) -> torch.Generator:
    try:
        return torch.Generator().manual_seed(operator.index(seed))
    except TypeError:
        raise ValueError(f"the noise seed must be an integer, got {seed!r}") from None


def _standard_normal(y: Tensor, seed: int) -> Tensor:
    return torch.randn(y.shape, generator=_generator(seed), dtype=y.dtype).to(y.device)


def _check_image_like(y: Tensor, kind: str) -> None:
    if y.dim() != 4:
        raise ValueError(f"{kind} noise acts on image-like measurements (B, C, H, W), got shape {tuple(y.shape)}; "
                         f"use gaussian noise for compressed sensing")


# Bicubic downsampling overshoots [-1, 1] a little at edges; anything beyond this is not an image.
IMAGE_RANGE_SLACK = 0.5


def _check_intensities(y: Tensor, kind: str) -> None:
    peak = y.detach().abs().max().item() if y.numel() else 0.0
    if peak > 1 + IMAGE_RANGE_SLACK:
        raise ValueError(f"{kind} noise acts on image intensities in [-1, 1] but these measurements reach {peak:.3g} "
                         f"(e.g. phase-retrieval magnitudes); use gaussian noise")


def _check_level(name: str, value: float, allow_zero: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {bound} number, got {value!r}")
    return float(value)


class Noise:
    """Interface: ``noise(y, seed)`` returns a noisy copy of y; ``spec()`` its string form."""

    def __call__(self, y: Tensor, seed: int) -> Tensor:
        raise NotImplementedError

    def spec(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class NoNoise(Noise):
    def __call__(self, y: Tensor, seed: int = 0) -> Tensor:
        return y.clone()

    def spec(self) -> str:
        return "none"


@dataclass(frozen=True)
class GaussianNoise(Noise):
    sigma: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", _check_level("the Gaussian noise sigma", self.sigma))

    def __call__(self, y: Tensor, seed: int) -> Tensor:
        return y + self.sigma * _standard_normal(y, seed)

    def spec(self) -> str:
        return f"gaussian:{self.sigma:g}"


@dataclass(frozen=True)
class PoissonNoise(Noise):
    level: float

    def __post_init__(self):
        object.__setattr__(self, "level", _check_level("the Poisson noise level", self.level, allow_zero=False))

    def __call__(self, y: Tensor, seed: int) -> Tensor:
        _check_image_like(y, "poisson")
        _check_intensities(y, "poisson")
        photons = 255.0 * self.level
        intensity = ((y.detach().cpu().double() + 1) / 2).clamp(0, 1)
        counts = torch.poisson(intensity * photons, generator=_generator(seed))
        return (2 * counts / photons - 1).clamp(-1, 1).to(dtype=y.dtype, device=y.device)

    def spec(self) -> str:
        return f"poisson:{self.level:g}"


@dataclass(frozen=True)
class SpeckleNoise(Noise):
    sigma: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", _check_level("the speckle noise sigma", self.sigma))

    def __call__(self, y: Tensor, seed: int) -> Tensor:
        _check_image_like(y, "speckle")
        _check_intensities(y, "speckle")
        intensity = (y + 1) / 2
        noisy = intensity * (1 + self.sigma * _standard_normal(y, seed))
        return (2 * noisy - 1).clamp(-1, 1)

    def spec(self) -> str:
        return f"speckle:{self.sigma:g}"


_MODELS = {"gaussian": GaussianNoise, "poisson": PoissonNoise, "speckle": SpeckleNoise}


def parse_noise(spec: str | Noise | None) -> Noise:
    """"none" / None / "" -> NoNoise; "gaussian:0.05", "poisson:1.0", "speckle:0.1" -> that model."""
    if isinstance(spec, Noise):
        return spec
    if spec is None or not str(spec).strip() or str(spec).strip().lower() == "none":
        return NoNoise()
    kind, sep, value = str(spec).strip().lower().partition(":")
    if kind not in _MODELS or not sep:
        raise ValueError(f"unknown noise {spec!r}; use {VALID_SPECS}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"noise {spec!r} needs a number after the colon; use {VALID_SPECS}") from None
    return _MODELS[kind](number)
