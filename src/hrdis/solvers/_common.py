"""Small pieces the sampling-based peer methods (DPS, PiGDM, DDRM, DDIM, DMPlug) share."""

from __future__ import annotations

import math

import torch

from ..operators import Operator
from ..schedule import VPSchedule


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
