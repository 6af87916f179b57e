"""Prior-free baselines, with the solver interface so the benchmark treats them like any method:
total-variation regularised reconstruction and plain bicubic upsampling (for super-resolution)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..operators import Operator, is_super_resolution
from .base import SolveResult, check_inputs, check_positive, check_positive_int, squared_misfit
from .config import SolverConfig
from .steplog import StepCallback, StepLog


@dataclass(frozen=True)
class TVConfig(SolverConfig):
    """steps: Adam iterations; tv_weight: the weight of TV(x); lr: Adam's learning rate."""

    steps: int = 300
    tv_weight: float = 0.01
    lr: float = 0.02

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_positive("lr", self.lr)
        if not self.tv_weight >= 0:
            raise ValueError(f"tv_weight must be >= 0, got {self.tv_weight!r}")


@dataclass(frozen=True)
class BicubicConfig(SolverConfig):
    """Bicubic upsampling takes no parameters."""


def total_variation(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Isotropic TV, smoothed by eps so its gradient exists at flat regions; per-image mean, summed."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return (dx.pow(2) + dy.pow(2) + eps**2).sqrt().flatten(1).mean(1).sum()


def tv(y: torch.Tensor, operator: Operator, prior=None, config: TVConfig | None = None, *, seed: int | list[int] = 0,
       randomness=None, reference: torch.Tensor | None = None, progress: bool = False,
       callback: StepCallback | None = None) -> SolveResult:
    """argmin_x mean(1/2 (y - A x)^2) + tv_weight * TV(x) by Adam from A^+ y (``initial_estimate``; the
    prior is not used, nor is any randomness)."""
    c = config or TVConfig()
    check_inputs(y, operator, None, c.steps)
    log = StepLog("tv", reference=reference, progress=progress, callback=callback)
    x_init = operator.initial_estimate(y).detach()
    x = x_init.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=c.lr)
    for n, _ in log.steps(range(c.steps)):
        data = 0.5 * squared_misfit(y, operator, x).sum()
        loss = data + c.tv_weight * total_variation(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.record(n, None, x=x, estimate=x, loss_obs=data.item())
    return log.result(x.detach().clamp(-1, 1), x_init, nfe=0, backprop=False, params=c.as_dict())


def bicubic(y: torch.Tensor, operator: Operator, prior=None, config: BicubicConfig | None = None, *,
            seed: int | list[int] = 0, randomness=None, reference: torch.Tensor | None = None, progress: bool = False,
            callback: StepCallback | None = None) -> SolveResult:
    """Bicubic upsampling of a low-resolution measurement (super-resolution operators only)."""
    if not is_super_resolution(operator):
        raise ValueError("the bicubic baseline applies to super-resolution tasks only (sr2, sr4, ...)")
    log = StepLog("bicubic")
    up = F.interpolate(y, scale_factor=operator.scale, mode="bicubic", align_corners=False).clamp(-1, 1)
    return log.result(up, up, nfe=0, backprop=False, params={})
