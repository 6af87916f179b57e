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

import torch

from ..operators import Operator
from ..priors import Prior
from ..schedule import VPSchedule
from .base import SolveResult, check_positive_int, check_unit_interval
from .hrdis import hrdis


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
    *,
    steps: int = 150,
    eta: float = 1.0,
    obs_weight: float = 1.0,
    reg_weight: float = 0.25,
    lr: float = 0.1,
    min_weight: float | None = None,
    fresh_noise_steps: int = 0,
    t_start: int | None = None,
    t_end: int = 0,
    seed: int | list[int] = 0,
    init: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
) -> SolveResult:
    """HRDIS with the DDIM noise split as its per-step beta (see the module docstring).

    ``eta``: the DDIM stochasticity that sets beta_t (1 = DDPM-like, 0 = CR); the other arguments are
    ``hrdis``'s (``fresh_noise_steps``, e.g. phase retrieval's 250, sets beta_t = 1 on those first steps,
    as in HRDIS). One network evaluation per step, no backprop through the network.
    """
    check_unit_interval("eta", eta)
    check_positive_int("steps", steps)
    betas = ddim_fresh_fraction(prior.schedule, prior.schedule.timesteps(steps, t_start, t_end), eta)
    betas = [1.0 if n < fresh_noise_steps else b for n, b in enumerate(betas)]
    result = hrdis(y, operator, prior, steps=steps, beta=betas, obs_weight=obs_weight, reg_weight=reg_weight, lr=lr,
                   min_weight=min_weight, t_start=t_start, t_end=t_end, seed=seed, init=init, reference=reference,
                   progress=progress)
    for record, beta in zip(result.history, betas):
        record["beta"] = beta
    result.method = "drddim"
    result.params = {k: v for k, v in result.params.items() if k != "beta"} | {"eta": eta}
    return result
