"""Small pieces the sampling-based peer methods (DPS, PiGDM, DDRM, DDIM, DMPlug) share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..operators import Operator
from ..randomness import randn
from ..schedule import VPSchedule
from .base import check_positive_int
from .config import SolverConfig, check_choice


def image_shape(y: torch.Tensor, operator: Operator) -> torch.Size:
    """The shape (B, C, H, W) of the images behind y (one pinv on one measurement, for its shape)."""
    return torch.Size((y.shape[0], *operator.pinv(y[:1]).shape[1:]))


def check_grid(steps: int, schedule: VPSchedule) -> None:
    """A sampler visits each timestep at most once: more steps than T would repeat timesteps."""
    if steps > schedule.num_timesteps:
        raise ValueError(f"steps must be at most the schedule's {schedule.num_timesteps} timesteps, got {steps}")


def check_non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def next_timestep(timesteps: list[int], i: int) -> int | None:
    """The timestep after step i, None after the last (the step then lands on the clean image)."""
    return timesteps[i + 1] if i + 1 < len(timesteps) else None


def psnr_per_image(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR in dB of images in [-1, 1] (on the [0, 1] scale), as ``base.psnr_tensor`` but per image."""
    mse = ((x.clamp(-1, 1) - reference) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


def sigma_y_task_params(task, noise) -> dict:
    """DDRM and PiGDM model Gaussian measurement noise: take sigma_y from it (other noise models: sigma_y = 0)."""
    from ..noise import GaussianNoise

    return {"sigma_y": noise.sigma} if isinstance(noise, GaussianNoise) else {}


def sampler_timesteps(config, schedule: VPSchedule) -> list[int]:
    """A sampler's grid: ``config.steps`` even timesteps from T - 1, or the reference code's strided grid."""
    if config.timestep_grid == "strided":
        return schedule.strided_timesteps(config.steps)
    return schedule.timesteps(config.steps)


def sampler_start(start: str, y: torch.Tensor, operator: Operator, schedule: VPSchedule, t: int,
                  source) -> torch.Tensor:
    """x at the first timestep t: pure noise ("noise"), or the measurement's pseudo-inverse noised to t
    ("pinv": sqrt(alpha_bar_t) A^+ y + sqrt(1 - alpha_bar_t) z, the RED-diff code's PiGDM and DPS start)."""
    if start == "noise":
        return randn(image_shape(y, operator), source, y.device, role="initial")
    x_pinv = operator.pinv(y).detach()
    return schedule.alpha(t) * x_pinv + schedule.sigma(t) * randn(x_pinv.shape, source, y.device, role="initial")


@dataclass(frozen=True)
class SamplerConfig(SolverConfig):
    """What the DDIM-type samplers (DPS, PiGDM, DDIM, DDRM) share.

    steps: sampling steps, one network evaluation each (at most T; the strided grid may run a few more).
    timestep_grid: "even" (``steps`` timesteps from T - 1 to 0) or "strided" (the RED-diff / HRDIS code's
        ``range(0, T, T // steps)``).
    clamp_result: clamp the returned sample to [-1, 1] (the reference code returns it unclamped).
    schedule_precision: "float64" or "float32" (the reference code's alpha_bar).
    """

    steps: int = 100
    timestep_grid: str = "even"
    clamp_result: bool = True
    schedule_precision: str = "float64"

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_choice("timestep_grid", self.timestep_grid, ("even", "strided"))
        check_choice("schedule_precision", self.schedule_precision, ("float64", "float32"))


# What the official variants of the samplers share: the RED-diff / HRDIS code's grid, schedule and result.
REFERENCE_SAMPLER = dict(timestep_grid="strided", clamp_result=False, schedule_precision="float32")
