"""DR+DDIM: the HRDIS paper's ablation (Dou et al., ICLR 2025, App. C.3, Table 8).

"A straightforward approach is to incorporate existing DDIM solvers using hybrid noise to enhance
DR." Our reading: denoising regularisation (the HRDIS loop, ``hrdis.py``) whose perturbation noise
is mixed the way a DDIM step mixes it. A DDIM step from t' to t (t' > t, the previous grid point)

    x_t = alpha_t x0_hat + sqrt(sigma_t^2 - b_t^2) eps_theta(x_t', t') + b_t z,
    b_t = eta sqrt((sigma_t^2 / sigma_t'^2) (1 - alpha_t'^2 / alpha_t^2)),

splits its noise into a deterministic part (the previous prediction) and a random part, so the
perturbation of mu at step t is

    eps_pert = sqrt(1 - b_t^2 / sigma_t^2) eps_theta(mu_t', t') + (b_t / sigma_t) eps_fresh,

i.e. HRDIS's hybrid noise with a per-step beta_t = b_t^2 / sigma_t^2
= eta^2 (1 - alpha_bar_t' / alpha_bar_t) / (1 - alpha_bar_t'), which the schedule fixes instead of a
tuned constant: small where the grid is fine relative to the noise level (mid-trajectory, ~0.1 for
100 steps) and near 1 at the last steps. eta = 1 (DDPM-like DDIM) by default; eta = 0 is CR. The
first step has no previous prediction and uses fresh noise, as HRDIS does. Everything else (data term,
weights, Adam, presets) is HRDIS's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness
from ..schedule import VPSchedule
from .base import SolveResult, check_unit_interval
from .hrdis import HRDISConfig, RegularisedConfig, hrdis
from .steplog import StepCallback


@dataclass(frozen=True)
class DRDDIMConfig(RegularisedConfig):
    """HRDIS's loop parameters (``RegularisedConfig``) and eta, the DDIM stochasticity that sets beta_t
    (1 = DDPM-like, 0 = CR)."""

    eta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("eta", self.eta)


def ddim_fresh_fraction(schedule: VPSchedule, timesteps: list[int], eta: float) -> list[float]:
    """beta_t = b_t^2 / sigma_t^2 for each step of ``timesteps`` (descending); 1.0 for the first step."""
    abar = schedule.alpha_bar
    betas = [1.0]
    for t_prev, t in zip(timesteps, timesteps[1:]):
        ratio = (abar[t_prev] / abar[t]).item()
        beta = eta**2 * (1.0 - ratio) / (1.0 - abar[t_prev].item())
        betas.append(min(max(beta, 0.0), 1.0))  # rounding only: 0 <= beta_t <= 1 whenever alpha_bar_t <= 1
    return betas


def drddim(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DRDDIMConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    init: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """HRDIS with the DDIM noise split as its per-step beta (see the module docstring). ``fresh_noise_steps``
    (e.g. phase retrieval's 250) sets beta_t = 1 on those first steps, as in HRDIS. One network evaluation
    per step, no backprop through the network."""
    c = config or DRDDIMConfig()
    shared = {f.name: getattr(c, f.name) for f in dataclasses.fields(RegularisedConfig)}
    betas = ddim_fresh_fraction(prior.schedule, prior.schedule.timesteps(c.steps, c.t_start, c.t_end), c.eta)
    betas = [1.0 if n < c.fresh_noise_steps else b for n, b in enumerate(betas)]
    result = hrdis(y, operator, prior, HRDISConfig(**shared, beta=betas), seed=seed, randomness=randomness, init=init,
                   reference=reference, progress=progress, callback=callback)
    for record, beta in zip(result.history, betas):
        record["beta"] = beta
    result.method = "drddim"
    result.params = {**c.as_dict(), "seed": seed}
    return result
