"""DPS: Diffusion Posterior Sampling (Chung et al., ICLR 2023).

DDPM ancestral sampling (Ho et al., 2020) from x_T ~ N(0, I), with a gradient step on the data
misfit after each prior step. On a grid t_N > ... > t_1 = 0, with alpha_t, sigma_t of ``VPSchedule``:

    x0_hat(x_i) = clip((x_i - sigma_i eps_theta(x_i, t_i)) / alpha_i, -1, 1)          (Tweedie)
    x'_{i-1}    ~ q(x_{i-1} | x_i, x0_hat)                                           (DDPM posterior step)
    x_{i-1}     = x'_{i-1} - zeta grad_{x_i} ||y - A(x0_hat(x_i))||_2                    (Algorithm 1)

The gradient goes through the network (one forward and one backward pass per step). The norm is
not squared, as in the official code: the paper's zeta_i = zeta' / ||y - A(x0_hat)|| on the squared
norm is the same direction with twice the step. Only the forward A(x) is used, so nonlinear
operators work as they are.

zeta is tuned for 1000 steps: the measurement pulls on x once per step, so at far fewer steps (50) DPS
returns a face unrelated to y; ``hrdis solve`` warns when ``--steps`` is below a quarter of that.

Fewer than T steps use a strided grid with the respaced betas 1 - alpha_bar_t / alpha_bar_s
(guided-diffusion's respacing); the DDPM posterior step is then exactly DDIM with eta = 1
(Song et al., 2021), which ``sampling.ddim_step`` implements, clipping x0_hat as the official code.

Differences from the official code:
- the norm is per image (summed over the batch), so a batch of B problems takes the same steps as
  B runs of one; the official code takes one norm over the whole batch;
- the DDPM variance is the posterior variance beta_tilde_t (guided-diffusion's "fixed small"); the
  official FFHQ/ImageNet checkpoints interpolate a learned variance between beta_tilde_t and beta_t.
"""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from ..operators import Operator
from ..priors import Prior
from ..sampling import ddim_step
from .base import BatchNoise, SolveResult, check_inputs, psnr_tensor, randn
from ._common import check_grid, check_non_negative, image_shape, next_timestep

# zeta per task family, by the task name's prefix (the settings this project's benchmark uses).
STEP_SIZES = {"inpaint": 0.5, "sr": 0.3, "deblur": 0.3, "phase": 1.0}
DEFAULT_STEP_SIZE = 0.5


def task_step_size(task_name: str) -> float:
    """zeta for a task: 0.5 inpainting, 0.3 super-resolution and deblurring, 1.0 phase retrieval, else 0.5."""
    for prefix, zeta in STEP_SIZES.items():
        if task_name.startswith(prefix):
            return zeta
    return DEFAULT_STEP_SIZE


def dps_task_params(task, noise) -> dict:
    return {"step_size": task_step_size(task.name)}


def dps(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    *,
    steps: int = 1000,
    step_size: float = DEFAULT_STEP_SIZE,
    seed: int | list[int] = 0,
    reference: torch.Tensor | None = None,
    progress: bool = False,
) -> SolveResult:
    """Sample x given y = A(x) + noise with DPS.

    Args:
        steps: number of DDPM steps (1000 in the paper; fewer use a strided grid). One network
            evaluation and one backward pass each.
        step_size: zeta, the step on grad ||y - A(x0_hat)|| (0 gives unconditional DDPM sampling).
        seed: seeds x_T and the DDPM noise.
        reference: the ground truth, only to record the PSNR of x0_hat per step.
    """
    check_inputs(y, operator, prior, steps)
    check_grid(steps, prior.schedule)
    check_non_negative("step_size (zeta)", step_size)
    start = time.perf_counter()
    generator = BatchNoise(seed, y.shape[0])
    x = randn(image_shape(y, operator), generator, y.device)
    x_init = x.clone()
    timesteps = prior.schedule.timesteps(steps)

    history = []
    for i, t in enumerate(tqdm(timesteps, desc="dps", disable=not progress, leave=False)):
        x = x.detach().requires_grad_(True)
        x_prev, x0 = ddim_step(prior, x, t, next_timestep(timesteps, i), eta=1.0, generator=generator)
        misfit = (y - operator(x0)).flatten(1).norm(dim=1)  # ||y - A(x0_hat)|| per image
        (grad,) = torch.autograd.grad(misfit.sum(), x)
        x = (x_prev - step_size * grad).detach()

        record = {"step": i, "t": t, "misfit": misfit.mean().item()}
        if reference is not None:
            record["psnr"] = psnr_tensor(x0.detach(), reference)
        history.append(record)

    return SolveResult(image=x.clamp(-1, 1), init=x_init, history=history, nfe=steps, backprop=True, method="dps",
                       params=dict(steps=steps, step_size=step_size, seed=seed), seconds=time.perf_counter() - start)
