"""PiGDM: pseudoinverse-guided diffusion models (Song, Vahdat, Mardani & Kautz, ICLR 2023), for linear
measurements, noiseless or with Gaussian noise.

PiGDM approximates p(x_0 | x_t) by N(x0_hat, r_t^2 I), so that for y = A x

    g = grad_{x_t} log p(y | x_t) ~ r_t^-2 ((A^+ y - A^+ A x0_hat)^T  d x0_hat / d x_t)^T,

a vector-Jacobian product through the network (one backward pass per step). r_t^2 = sigma^2 / (1 + sigma^2)
in the paper's variance-exploding sigma (unit data variance); with x_t = alpha_t x_0 + sigma_t eps
that is r_t^2 = sigma_t^2.

The guidance corrects the score, grad log p(x_t | y) = grad log p(x_t) + g, i.e. the noise prediction
eps_y = eps_theta - sigma_t g, which then drives an ordinary DDIM step (``sampling.ddim_step``):

    x0_y = (x_t - sigma_t eps_y) / alpha_t = x0_hat + w (sigma_t^2 / alpha_t) g
    x_s  = alpha_s x0_y + sqrt(sigma_s^2 - b^2) eps_y + b z,
    b    = eta sqrt((sigma_s^2 / sigma_t^2) (1 - alpha_t^2 / alpha_s^2))

with guidance weight w (1 = the plain posterior score). For data of unit variance d x0_hat / d x_t
~ alpha_t, and x0_y is the projection x0_hat + A^+(y - A x0_hat) onto the measurements.

With Gaussian noise of standard deviation sigma_y (the PiGDM paper's noisy case),
p(y | x_t) ~ N(A x0_hat, r_t^2 A A^T + sigma_y^2 I), and A^+ (y - A x0_hat) above becomes
r_t^2 A^T (r_t^2 A A^T + sigma_y^2 I)^-1 (y - A x0_hat) = V diag(s / (s^2 + sigma_y^2 / r_t^2)) U^T (y - A x0_hat),
through DDRM's SVD of A (``ddrm.svd_of``). It equals A^+ (y - A x0_hat) at sigma_y = 0, and it no longer
divides the noise by small singular values: with sigma_y = 0 on a noisy 64 px blur, A^+ amplifies the noise
up to 100x and the samples are noise (11 dB; docs/RESULTS.md, "Linear deblurring under noise").

Differences from other implementations: the paper's Algorithm 1 adds the guidance to the DDIM update
as a separate weighted term; RED-diff's and HRDIS's reference code adds
0.01 sqrt(alpha_bar_s alpha_bar_t) (A^+ y - A^+ A x0_hat)^T d x0_hat / d x_t without the r_t^-2. Here
the guidance enters through the score as above, so its size follows from r_t and the step.
x0_y is clipped to [-1, 1] before the step (``clip_x0``), as DDIM sampling does.

The official variant (``PiGDMConfig.OFFICIAL``) is PiGDM as the HRDIS paper's code runs it (RED-diff's
``algos/pgdm.py`` with the HRDIS fork's weight): ``guidance_rule="additive"``, x_s = DDIM(x0_hat, eps_theta)
+ w sqrt(alpha_bar_s alpha_bar_t) g' with w = 0.01 and g' the vector-Jacobian product without r_t^-2;
``eta`` 0; no clipping; for operators that select pixels (inpainting) x0_hat's observed pixels replaced by y and
g' kept to the holes (``project_pixels``); x_T = sqrt(alpha_bar_T) A^+ y + sqrt(1 - alpha_bar_T) z
(``start="pinv"``); the strided grid, float32 schedule and an unclamped result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from ..operators import Operator, is_linear
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from ..sampling import ddim_step
from .base import SolveResult, check_inputs, check_unit_interval
from ._common import (REFERENCE_SAMPLER, SamplerConfig, check_grid, check_non_negative, image_shape, next_timestep,
                      sampler_start, sampler_timesteps)
from .config import check_choice
from .ddrm import SVD_OPERATORS_TEXT, has_svd, svd_of
from .steplog import StepCallback, StepLog

# correction(x0_hat, r_t^2): the image-space residual that the guidance backpropagates
Correction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def measurement_correction(y: torch.Tensor, operator: Operator, sigma_y: float, shape) -> Correction:
    """r_t^2 A^T (r_t^2 A A^T + sigma_y^2 I)^-1 (y - A x0_hat): A^+ (y - A x0_hat) when sigma_y = 0."""
    if sigma_y == 0:
        target = operator.pinv(y).detach()  # A^+ y
        return lambda x0, r2: target - operator.pinv(operator(x0))
    if not has_svd(operator):
        raise ValueError(f"PiGDM with sigma_y > 0 needs an operator with an SVD ({SVD_OPERATORS_TEXT}), not "
                         f"{type(operator).__name__}; sigma_y=0 runs its noiseless form")
    svd = svd_of(operator, tuple(shape[-2:]))
    s = svd.singulars.to(y)

    def correction(x0, r2):
        weight = s / (s**2 + sigma_y**2 / r2)  # zero on A's null space, where s = 0
        return svd.v(weight * svd.ut(y - operator(x0)))
    return correction


def pseudoinverse_guidance(prior: Prior, x: torch.Tensor, t: int, correction: Correction,
                           schedule=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(eps_theta, x0_hat, g) at x_t = x, with g = r_t^-2 (correction(x0_hat)^T d x0_hat/d x_t)^T."""
    schedule = schedule or prior.schedule
    x = x.detach().requires_grad_(True)
    sigma = schedule.sigma(t)
    eps = prior.eps(x, t)
    x0 = schedule.x0(x, eps, t)
    r2 = sigma**2  # r_t^2 = sigma_t^2
    with torch.no_grad():  # the residual is a constant of the vector-Jacobian product
        residual = correction(x0, r2)
    (vjp,) = torch.autograd.grad(x0, x, grad_outputs=residual)
    return eps.detach(), x0.detach(), vjp / r2


@dataclass(frozen=True)
class PiGDMConfig(SamplerConfig):
    """PiGDM's parameters: ``SamplerConfig``'s (100 steps, as the paper), and

    eta: DDIM stochasticity (0 deterministic, 1 DDPM-like).
    guidance: w, the weight of the pseudo-inverse guidance g in the score.
    guidance_rule: "score" (g enters the noise prediction, module docstring) or "additive" (the RED-diff
        code's w sqrt(alpha_bar_s alpha_bar_t) g' added to the DDIM step; noiseless form only).
    clip_x0: clip the guided x0 estimate to [-1, 1] before each DDIM step.
    project_pixels: where the operator selects pixels, replace x0_hat's observed pixels by y and keep the
        guidance to the holes ("additive" rule only).
    sigma_y: the Gaussian measurement noise's standard deviation, in units of y (> 0 needs an SVD of A).
    start: "noise" (x_T ~ N(0, I)) or "pinv" (sqrt(alpha_bar_T) A^+ y + sqrt(1 - alpha_bar_T) z).
    """

    eta: float = 1.0
    guidance: float = 1.0
    guidance_rule: str = "score"
    clip_x0: bool = True
    project_pixels: bool = False
    sigma_y: float = 0.0
    start: str = "noise"

    OFFICIAL: ClassVar[dict] = dict(REFERENCE_SAMPLER, eta=0.0, guidance=0.01, guidance_rule="additive", clip_x0=False,
                                    project_pixels=True, start="pinv")
    OFFICIAL_SOURCE: ClassVar[str] = "NVlabs/RED-diff algos/pgdm.py (as forked by deng-ai-lab/HRDIS)"

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("eta", self.eta)
        check_non_negative("guidance", self.guidance)
        check_non_negative("sigma_y", self.sigma_y)
        check_choice("guidance_rule", self.guidance_rule, ("score", "additive"))
        check_choice("start", self.start, ("noise", "pinv"))
        if self.guidance_rule == "additive" and self.sigma_y > 0:
            raise ValueError("PiGDM's additive guidance rule is its noiseless form; use guidance_rule='score' "
                             "with sigma_y > 0")


def pigdm(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: PiGDMConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Sample x given a linear measurement y = A x + sigma_y n with PiGDM (parameters: ``PiGDMConfig``).
    ``seed`` (or ``randomness``) gives x_T and the DDIM noise; ``reference`` only records the PSNR of the
    guided x0 estimate per step."""
    c = config or PiGDMConfig()
    check_inputs(y, operator, prior, c.steps)
    if not is_linear(operator):
        raise ValueError(f"PiGDM needs a linear operator with a pseudo-inverse; {operator.name} is not linear")
    check_grid(c.steps, prior.schedule)
    schedule = prior.schedule.in_precision(c.schedule_precision)
    timesteps = sampler_timesteps(c, schedule)
    log = StepLog("pigdm", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    shape = image_shape(y, operator)
    correction = measurement_correction(y, operator, c.sigma_y, shape)
    x = sampler_start(c.start, y, operator, schedule, timesteps[0], source)
    x_init = x.clone()
    project = c.project_pixels and operator.selects_pixels

    for i, t in log.steps(timesteps):
        t_next = next_timestep(timesteps, i)
        if c.guidance_rule == "score":
            eps, x0, g = pseudoinverse_guidance(prior, x, t, correction, schedule)
            eps_y = eps - schedule.sigma(t) * c.guidance * g  # score + w g, as a noise prediction
            with torch.no_grad():
                x, x0_y = ddim_step(prior, x.detach(), t, t_next, c.eta, source, eps=eps_y, clip_x0=c.clip_x0,
                                    schedule=schedule)
        else:
            x, x0, x0_y = additive_guidance_step(prior, x, t, t_next, correction, y, operator, c, project, schedule,
                                                 source)
        with torch.no_grad():
            misfit = (y - operator(x0)).flatten(1).norm(dim=1).mean().item()
        log.record(i, t, x=x, estimate=x0_y, misfit=misfit)

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=len(timesteps), backprop=True,
                      params={**c.as_dict(), "seed": seed})


def additive_guidance_step(prior: Prior, x: torch.Tensor, t: int, t_next: int | None, correction: Correction,
                           y: torch.Tensor, operator: Operator, c: PiGDMConfig, project: bool, schedule,
                           source) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The RED-diff code's PiGDM step (module docstring): returns (x_s, x0_hat, the x0 the step used)."""
    x = x.detach().requires_grad_(True)
    eps = prior.eps(x, t)
    x0 = schedule.x0(x, eps, t)
    with torch.no_grad():
        residual = correction(x0, None)
    (g,) = torch.autograd.grad(x0, x, grad_outputs=residual)
    eps, x0 = eps.detach(), x0.detach()
    x0_used = x0
    with torch.no_grad():
        if project:  # x0 - A^+ A x0 + A^+ y: exactly x0 (1 - m) + y m for a 0/1 mask m
            x0_used = (x0 - operator.pinv(operator(x0))) + operator.pinv(y)
            g = g - operator.pinv(operator(g))
        a_t, a_s = reference_alpha_bar(schedule, t), reference_alpha_bar(schedule, t_next)
        c1 = ((1 - a_t / a_s) * (1 - a_s) / (1 - a_t)).sqrt() * c.eta
        c2 = ((1 - a_s) - c1**2).sqrt()
        x_next = a_s.sqrt() * x0_used + c1 * randn(x.shape, source, x.device, role="step") + c2 * eps
        x_next = x_next + g * (a_s.sqrt() * a_t.sqrt() * c.guidance)
    return x_next, x0, x0_used


def reference_alpha_bar(schedule, t: int | None) -> torch.Tensor:
    """alpha_bar_t as a float32 tensor, 1 after the last step (t = None): the RED-diff code's ``alpha(t)``."""
    return torch.tensor(1.0) if t is None else schedule.alpha_bar[t].float()
