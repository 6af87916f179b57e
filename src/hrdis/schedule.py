"""The variance-preserving (DDPM) noise schedule of the public ADM checkpoints.

x_t = alpha_t * x_0 + sigma_t * eps, with alpha_t = sqrt(alpha_bar_t) and sigma_t = sqrt(1 - alpha_bar_t),
alpha_bar_t = prod_{s<=t} (1 - beta_s), betas linear from 1e-4 to 0.02 over T = 1000 integer steps
(Ho et al., 2020). Timesteps are integers 0..T-1, as the networks were trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

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
