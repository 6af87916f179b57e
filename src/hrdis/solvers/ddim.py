"""DDIM (Song et al., ICLR 2021) as a "method" that ignores the measurement: what the prior alone gives.

    x0_hat = clip((x_t - sigma_t eps_theta(x_t, t)) / alpha_t, -1, 1)
    x_s    = alpha_s x0_hat + sqrt(sigma_s^2 - b^2) eps_hat + b z,
    b      = eta sqrt((sigma_s^2 / sigma_t^2) (1 - alpha_t^2 / alpha_s^2))

from x_T ~ N(0, I) down to the clean image (``sampling.ddim_step``). A reference point for the
benchmark: a restoration method should beat an unconditional sample from its own prior.
"""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from ..operators import Operator
from ..priors import Prior
from ..sampling import ddim_step
from .base import BatchNoise, SolveResult, check_inputs, check_unit_interval, psnr_tensor, randn
from ._common import check_grid, image_shape, next_timestep


def ddim(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    *,
    steps: int = 100,
    eta: float = 0.0,
    seed: int | list[int] = 0,
    reference: torch.Tensor | None = None,
    progress: bool = False,
) -> SolveResult:
    """Unconditional DDIM samples shaped like the images behind y (y itself is not used).

    Args:
        steps: DDIM steps, one network evaluation each.
        eta: DDIM stochasticity (0 deterministic, 1 DDPM-like).
        seed: seeds x_T and the DDIM noise.
        reference: the ground truth, only to record the PSNR of x0_hat per step.
    """
    check_inputs(y, operator, prior, steps)
    check_grid(steps, prior.schedule)
    check_unit_interval("eta", eta)
    start = time.perf_counter()
    generator = BatchNoise(seed, y.shape[0])
    x = randn(image_shape(y, operator), generator, y.device)
    x_init = x.clone()
    timesteps = prior.schedule.timesteps(steps)

    history = []
    with torch.no_grad():
        for i, t in enumerate(tqdm(timesteps, desc="ddim", disable=not progress, leave=False)):
            x, x0 = ddim_step(prior, x, t, next_timestep(timesteps, i), eta, generator)
            record = {"step": i, "t": t}
            if reference is not None:
                record["psnr"] = psnr_tensor(x0, reference)
            history.append(record)

    return SolveResult(image=x.clamp(-1, 1), init=x_init, history=history, nfe=steps, backprop=False, method="ddim",
                       params=dict(steps=steps, eta=eta, seed=seed), seconds=time.perf_counter() - start)
