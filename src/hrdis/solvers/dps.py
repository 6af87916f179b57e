"""DPS: Diffusion Posterior Sampling (Chung et al., ICLR 2023).

DDPM ancestral sampling (Ho et al., 2020) from x_T ~ N(0, I), with a gradient step on the data
misfit after each prior step. On a grid t_N > ... > t_1 = 0, with alpha_t, sigma_t of ``VPSchedule``:

    x0_hat(x_i) = clip((x_i - sigma_i eps_theta(x_i, t_i)) / alpha_i, -1, 1)          (Tweedie)
    x'_{i-1}    ~ q(x_{i-1} | x_i, x0_hat)                                           (DDPM posterior step)
    x_{i-1}     = x'_{i-1} - zeta grad_{x_i} ||y - A(x0_hat(x_i))||_2                    (Algorithm 1)

The gradient goes through the network (one forward and one backward pass per step). The norm is
not squared, as in the DPS authors' code: the paper's zeta_i = zeta' / ||y - A(x0_hat)|| on the squared
norm (``misfit="squared_norm"``) is the same direction with twice the step. Only the forward A(x) is
used, so nonlinear operators work as they are.

zeta is tuned for 1000 steps: the measurement pulls on x once per step, so at far fewer steps (50) DPS
returns a face unrelated to y; ``hrdis solve`` warns when ``--steps`` is below a quarter of that.

Fewer than T steps use a strided grid with the respaced betas 1 - alpha_bar_t / alpha_bar_s
(guided-diffusion's respacing); the DDPM posterior step is then exactly DDIM with eta = 1
(Song et al., 2021), which ``sampling.ddim_step`` implements, clipping x0_hat as the authors' code.

Differences from the DPS authors' code (DPS2022/diffusion-posterior-sampling), each a field that the
authors' variant (``DPSConfig.AUTHORS``, ``variant="authors"``) sets:
- the norm is per image (summed over the batch), so a batch of B problems takes the same steps as
  B runs of one; the authors' code takes one norm over the whole batch (``misfit_reduction="batch"``);
- the DDPM variance is the posterior variance beta_tilde_t (guided-diffusion's "fixed small"); the
  authors' FFHQ/ImageNet checkpoints interpolate a learned variance between beta_tilde_t and beta_t
  (``learned_variance``: used where the prior has a variance head, ``Prior.variance_interpolation``);
- the result is clamped to [-1, 1]; theirs is not (``clamp_result``);
- their code draws noise it does not use: the DDPM noise at t = 0 and, every step, a q_sample draw shaped
  like y (``unused_draws``: drawn too, role "unused", so a seeded run consumes its stream as theirs does).
The authors' sampler otherwise is this one: the even grid round(k (T - 1) / (N - 1)) (guided-diffusion's
``space_timesteps``), eta 1, x0_hat clipped inside the gradient, zeta grad ||r|| unsquared. Measured on the
DPS fixtures (``scripts/parity.py ../shared/fixtures/parity-dps``): docs/RESULTS.md, "Faithfulness".

The official variant (``DPSConfig.OFFICIAL``) is DPS as the HRDIS paper's code (RED-diff's ``algos/dps.py``)
runs it: DDIM with ``eta`` 0, a step of 0.1 / ||y - A(x0_hat)|| on the squared norm, per image, no clipping
(``clip_x0``), x_T = sqrt(alpha_bar_T) A^+ y + sqrt(1 - alpha_bar_T) z (``start="pinv"``), the strided
timestep grid, an unclamped result and the float32 schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from ..sampling import ddim_step
from .base import SolveResult, check_inputs, check_unit_interval
from ._common import (REFERENCE_SAMPLER, SamplerConfig, check_grid, check_non_negative, next_timestep, sampler_start,
                      sampler_timesteps)
from .config import check_choice
from .steplog import StepCallback, StepLog

# zeta per task family, by the task name's prefix (the settings this project's benchmark uses).
STEP_SIZES = {"inpaint": 0.5, "sr": 0.3, "deblur": 0.3, "phase": 1.0}


@dataclass(frozen=True)
class DPSConfig(SamplerConfig):
    """DPS's parameters: ``SamplerConfig``'s (1000 steps, as the paper), and

    step_size: zeta (0 gives unconditional sampling). Tied to ``steps``: with far fewer steps the total pull
        towards y shrinks and the sample drifts from the measurement.
    misfit: "norm" (zeta grad ||y - A(x0_hat)||, the DPS authors' code) or "squared_norm" (the paper's
        zeta / ||y - A(x0_hat)|| grad ||y - A(x0_hat)||^2, per image).
    eta: the DDIM stochasticity of the prior step (1 = DDPM ancestral sampling).
    clip_x0: clip x0_hat to [-1, 1] in the prior step.
    start: "noise" (x_T ~ N(0, I)) or "pinv" (sqrt(alpha_bar_T) A^+ y + sqrt(1 - alpha_bar_T) z).
    misfit_reduction: "per_image" (one norm per image, summed: images of a batch do not interact) or
        "batch" (one norm over the whole batch, the DPS authors' code).
    learned_variance: with a prior that has a variance head (learn_sigma checkpoints), the DDPM step's
        variance is the learned interpolation between beta_tilde_t and beta_t (guided-diffusion's
        "learned_range"); otherwise, and when False, beta_tilde_t. Only for eta = 1.
    unused_draws: also draw the noise the DPS authors' code draws and never uses (the DDPM noise at t = 0,
        one draw shaped like y per step), so that a seeded run consumes its noise stream as theirs does.
    """

    steps: int = 1000
    step_size: float = 0.5
    misfit: str = "norm"
    eta: float = 1.0
    clip_x0: bool = True
    start: str = "noise"
    misfit_reduction: str = "per_image"
    learned_variance: bool = False
    unused_draws: bool = False

    OFFICIAL: ClassVar[dict] = dict(REFERENCE_SAMPLER, step_size=0.1, misfit="squared_norm", eta=0.0, clip_x0=False,
                                    start="pinv")
    OFFICIAL_SOURCE: ClassVar[str] = "NVlabs/RED-diff algos/dps.py (as forked by deng-ai-lab/HRDIS)"
    AUTHORS: ClassVar[dict] = dict(clamp_result=False, misfit_reduction="batch", learned_variance=True,
                                   unused_draws=True)
    AUTHORS_SOURCE: ClassVar[str] = "DPS2022/diffusion-posterior-sampling (the DPS authors' code, sampler ddpm)"

    def __post_init__(self):
        super().__post_init__()
        check_non_negative("step_size (zeta)", self.step_size)
        check_choice("misfit", self.misfit, ("norm", "squared_norm"))
        check_unit_interval("eta", self.eta)
        check_choice("start", self.start, ("noise", "pinv"))
        check_choice("misfit_reduction", self.misfit_reduction, ("per_image", "batch"))


def task_step_size(task_name: str) -> float:
    """zeta for a task: 0.5 inpainting, 0.3 super-resolution and deblurring, 1.0 phase retrieval, else
    ``DPSConfig``'s default."""
    for prefix, zeta in STEP_SIZES.items():
        if task_name.startswith(prefix):
            return zeta
    return DPSConfig.step_size


def dps_task_params(task, noise) -> dict:
    return {"step_size": task_step_size(task.name)}


def dps(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DPSConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Sample x given y = A(x) + noise with DPS (parameters: ``DPSConfig``). ``seed`` (or ``randomness``)
    gives x_T and the sampler's noise; ``reference`` only records the PSNR of x0_hat per step."""
    c = config or DPSConfig()
    check_inputs(y, operator, prior, c.steps)
    check_grid(c.steps, prior.schedule)
    schedule = prior.schedule.in_precision(c.schedule_precision)
    timesteps = sampler_timesteps(c, schedule)
    log = StepLog("dps", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    x = sampler_start(c.start, y, operator, schedule, timesteps[0], source)
    x_init = x.clone()

    for i, t in log.steps(timesteps):
        x = x.detach().requires_grad_(True)
        t_next = next_timestep(timesteps, i)
        x_prev, x0 = ddim_step(prior, x, t, t_next, eta=c.eta, generator=source, clip_x0=c.clip_x0,
                               schedule=schedule, learned_variance=c.learned_variance)
        if c.unused_draws:
            if t_next is None:
                randn(x.shape, source, x.device, role="step")  # their DDPM noise at t = 0, not added
            randn(y.shape, source, y.device, role="unused")  # their q_sample of y, unread by "ps"
        residual = (y - operator(x0)).flatten(1)
        if c.misfit_reduction == "batch":
            residual = residual.reshape(1, -1)
        if c.misfit == "norm":
            misfit = residual.norm(dim=1)  # ||y - A(x0_hat)|| per image
            (grad,) = torch.autograd.grad(misfit.sum(), x)
            x = (x_prev - c.step_size * grad).detach()
        else:
            squared = residual.pow(2).sum(dim=1)
            misfit = squared.sqrt().detach()
            (grad,) = torch.autograd.grad(squared.sum(), x)
            x = (x_prev - grad * (c.step_size / misfit).view(-1, *[1] * (x.dim() - 1))).detach()
        log.record(i, t, x=x, estimate=x0, misfit=misfit.mean().item())

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=len(timesteps), backprop=True,
                      params={**c.as_dict(), "seed": seed})
