"""The variance-preserving (DDPM) noise schedule of the public ADM checkpoints.

x_t = alpha_t * x_0 + sigma_t * eps, with alpha_t = sqrt(alpha_bar_t) and sigma_t = sqrt(1 - alpha_bar_t),
alpha_bar_t = prod_{s<=t} (1 - beta_s), betas linear from 1e-4 to 0.02 over T = 1000 integer steps
(Ho et al., 2020). Timesteps are integers 0..T-1, as the networks were trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal

import torch


@dataclass(frozen=True)
class VPSchedule:
    beta_start: float = 1e-4
    beta_end: float = 0.02
    num_timesteps: int = 1000

    @cached_property  # read several times per solver step
    def alpha_bar(self) -> torch.Tensor:
        """alpha_bar_t for t = 0..T-1, float64."""
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=torch.float64)
        return torch.cumprod(1.0 - betas, dim=0)

    def alpha(self, t) -> torch.Tensor:
        """alpha_t = sqrt(alpha_bar_t): the signal scale at timestep t (float32)."""
        return self.alpha_bar[torch.as_tensor(t)].sqrt().float()

    def sigma(self, t) -> torch.Tensor:
        """sigma_t = sqrt(1 - alpha_bar_t): the noise scale at timestep t (float32)."""
        return (1.0 - self.alpha_bar[torch.as_tensor(t)]).sqrt().float()

    def continuous_alpha_bar(self, t) -> torch.Tensor:
        """alpha_bar at a continuous timestep t in [0, T - 1] (float64): the VP SDE this schedule discretises
        (Song et al., 2021), alpha_bar(u) = exp(-(beta_min u + beta_d u^2 / 2)) with u = t / (T - 1),
        beta_min = T beta_start, beta_d = T (beta_end - beta_start) (0.1 and 19.9 here: EDM's ``VPPrecond``).
        It is not the discrete alpha_bar_t at integer t (1 at t = 0 against 0.9999; 1.5e-3 apart in eps
        at t = 250): a network called at continuous t sees inputs scaled by this one."""
        u = torch.as_tensor(t, dtype=torch.float64) / (self.num_timesteps - 1)
        beta_min = self.num_timesteps * self.beta_start
        beta_d = self.num_timesteps * (self.beta_end - self.beta_start)
        return torch.exp(-(beta_min * u + 0.5 * beta_d * u**2))

    def x0(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """Tweedie's estimate of the clean image from x_t and a noise prediction: (x_t - sigma_t eps) / alpha_t.
        ``t``: an integer, or one per image ((B,) tensor)."""
        t = torch.as_tensor(t)
        shape = (-1,) + (1,) * (x_t.ndim - 1) if t.ndim else ()
        a = self.alpha(t.cpu()).to(x_t.device).view(shape)
        s = self.sigma(t.cpu()).to(x_t.device).view(shape)
        return (x_t - s * eps) / a

    def in_precision(self, precision: Literal["float64", "float32", "float32-diffusers"]) -> "VPSchedule":
        """This schedule with alpha_bar accumulated in ``precision``: "float32" is how the RED-diff / HRDIS
        reference code computes it (``Float32VPSchedule``), "float32-diffusers" how diffusers' schedulers
        (DMPlug's code) do (``DiffusersFloat32VPSchedule``); the prior itself always converts its
        prediction with the float64 schedule it was trained with."""
        if precision == "float64":
            return self
        if precision == "float32":
            return Float32VPSchedule(self.beta_start, self.beta_end, self.num_timesteps)
        if precision == "float32-diffusers":
            return DiffusersFloat32VPSchedule(self.beta_start, self.beta_end, self.num_timesteps)
        raise ValueError(f"schedule precision must be float64, float32 or float32-diffusers, got {precision!r}")

    def strided_timesteps(self, steps: int, t_end: int = 0) -> list[int]:
        """The reference code's grid (RED-diff's ``get_timesteps``): ``range(t_end, T, (T - t_end) // steps)``,
        descending. It starts below T - 1 and may hold more than ``steps`` timesteps: N = 150 gives 167
        (996, 990, ..., 0), N = 30 gives 31 (990, 957, ..., 0)."""
        if steps <= 0:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        if not 0 <= t_end < self.num_timesteps:
            raise ValueError(f"need 0 <= t_end < {self.num_timesteps}, got t_end={t_end}")
        stride = (self.num_timesteps - t_end) // steps
        if stride < 1:
            raise ValueError(f"steps must be at most {self.num_timesteps - t_end} on the strided grid, got {steps}")
        return list(range(t_end, self.num_timesteps, stride))[::-1]

    def timesteps(self, steps: int, t_start: int | None = None, t_end: int = 0) -> list[int]:
        """A descending grid of ``steps`` integer timesteps from ``t_start`` (default T-1) to ``t_end``.

        The spacing between neighbours is the paper's epsilon (App. C.8) in units of 1/T.
        """
        if steps <= 0:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        t_start = self.num_timesteps - 1 if t_start is None else t_start
        if not 0 <= t_end <= t_start < self.num_timesteps:
            raise ValueError(f"need 0 <= t_end <= t_start < {self.num_timesteps}, got t_start={t_start}, t_end={t_end}")
        grid = torch.linspace(t_start, t_end, steps, dtype=torch.float64).round().long()
        return grid.tolist()

    def to_dict(self) -> dict:
        return asdict(self)


class Float32VPSchedule(VPSchedule):
    """The schedule as the RED-diff / HRDIS reference code computes it (``models/diffusion.py``): float64
    betas rounded to float32, their cumulative product taken in float32, and alpha_t, sigma_t as float32
    square roots of alpha_bar_t and of 1 - alpha_bar_t. It differs from the float64 schedule by at most
    2.7e-7 relative in alpha_bar, which replays of that code need to match it exactly."""

    @cached_property
    def alpha_bar32(self) -> torch.Tensor:
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=torch.float64).float()
        return torch.cumprod(1.0 - betas, dim=0)

    @cached_property
    def alpha_bar(self) -> torch.Tensor:
        return self.alpha_bar32.double()

    def alpha(self, t) -> torch.Tensor:
        return self.alpha_bar32[torch.as_tensor(t)].sqrt()

    def sigma(self, t) -> torch.Tensor:
        return (1.0 - self.alpha_bar32[torch.as_tensor(t)]).sqrt()


class DiffusersFloat32VPSchedule(Float32VPSchedule):
    """The schedule as diffusers' DDPM/DDIM schedulers compute it (DMPlug's ``ddim_sampler.py``): the betas
    spaced by ``torch.linspace`` in float32 itself (not rounded from float64), their cumulative product in
    float32. Up to 6e-8 from ``Float32VPSchedule``'s alpha_bar."""

    @cached_property
    def alpha_bar32(self) -> torch.Tensor:
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=torch.float32)
        return torch.cumprod(1.0 - betas, dim=0)
