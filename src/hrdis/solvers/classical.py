"""Prior-free baselines, with the solver interface so the benchmark treats them like any method:
total-variation regularised reconstruction and plain bicubic upsampling (for super-resolution)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..operators import AveragePoolSR, BicubicSR, Operator
from .base import SolveResult, check_inputs, psnr_tensor


def total_variation(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Isotropic TV, smoothed by eps so its gradient exists at flat regions; per-image mean, summed."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return (dx.pow(2) + dy.pow(2) + eps**2).sqrt().flatten(1).mean(1).sum()


def tv(y: torch.Tensor, operator: Operator, prior=None, *, steps: int = 300, tv_weight: float = 0.01,
       lr: float = 0.02, seed: int = 0, reference: torch.Tensor | None = None, progress: bool = False,
       **_ignored) -> SolveResult:
    """argmin_x mean(1/2 (y - A x)^2) + tv_weight * TV(x) by Adam from A^+ y (``initial_estimate``; the
    prior is not used)."""
    check_inputs(y, operator, None, steps)
    start = time.perf_counter()
    x_init = operator.initial_estimate(y).detach()
    x = x_init.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    history = []
    for n in range(steps):
        data = 0.5 * (y - operator(x)).pow(2).flatten(1).mean(1).sum()
        loss = data + tv_weight * total_variation(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec = {"step": n, "loss_obs": data.item()}
        if reference is not None:
            rec["psnr"] = psnr_tensor(x.detach(), reference)
        history.append(rec)
    return SolveResult(x.detach().clamp(-1, 1), x_init, history, nfe=0, backprop=False, method="tv",
                       params=dict(steps=steps, tv_weight=tv_weight, lr=lr), seconds=time.perf_counter() - start)


def bicubic(y: torch.Tensor, operator: Operator, prior=None, **_ignored) -> SolveResult:
    """Bicubic upsampling of a low-resolution measurement (super-resolution operators only)."""
    if not isinstance(operator, (AveragePoolSR, BicubicSR)):
        raise ValueError("the bicubic baseline applies to super-resolution tasks only (sr2, sr4, ...)")
    start = time.perf_counter()
    up = F.interpolate(y, scale_factor=operator.scale, mode="bicubic", align_corners=False).clamp(-1, 1)
    return SolveResult(up, up, [], nfe=0, backprop=False, method="bicubic", seconds=time.perf_counter() - start)
