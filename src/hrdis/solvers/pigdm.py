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
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm import tqdm

from ..operators import Operator, is_linear
from ..priors import Prior
from ..sampling import ddim_step
from .base import BatchNoise, SolveResult, check_inputs, check_unit_interval, psnr_tensor, randn
from ._common import check_grid, check_non_negative, image_shape, next_timestep
from .ddrm import SVD_OPERATORS_TEXT, has_svd, svd_of

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


def pseudoinverse_guidance(prior: Prior, x: torch.Tensor, t: int,
                           correction: Correction) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(eps_theta, x0_hat, g) at x_t = x, with g = r_t^-2 (correction(x0_hat)^T d x0_hat/d x_t)^T."""
    x = x.detach().requires_grad_(True)
    alpha, sigma = prior.schedule.alpha(t), prior.schedule.sigma(t)
    eps = prior.eps(x, t)
    x0 = (x - sigma * eps) / alpha
    r2 = sigma**2  # r_t^2 = sigma_t^2
    with torch.no_grad():  # the residual is a constant of the vector-Jacobian product
        residual = correction(x0, r2)
    (vjp,) = torch.autograd.grad(x0, x, grad_outputs=residual)
    return eps.detach(), x0.detach(), vjp / r2


def pigdm(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    *,
    steps: int = 100,
    eta: float = 1.0,
    guidance: float = 1.0,
    clip_x0: bool = True,
    sigma_y: float = 0.0,
    seed: int | list[int] = 0,
    reference: torch.Tensor | None = None,
    progress: bool = False,
) -> SolveResult:
    """Sample x given a linear measurement y = A x + sigma_y n with PiGDM.

    Args:
        steps: DDIM steps (100 in the paper), one network evaluation and one backward pass each.
        eta: DDIM stochasticity (0 deterministic, 1 DDPM-like).
        guidance: w, the weight of the pseudo-inverse guidance g in the score.
        clip_x0: clip the guided x0 estimate to [-1, 1] before each DDIM step.
        sigma_y: the Gaussian measurement noise's standard deviation, in units of y (> 0 needs an SVD of A).
        seed: seeds x_T and the DDIM noise.
        reference: the ground truth, only to record the PSNR of the guided x0 estimate per step.
    """
    check_inputs(y, operator, prior, steps)
    if not is_linear(operator):
        raise ValueError(f"PiGDM needs a linear operator with a pseudo-inverse; {operator.name} is not linear")
    check_grid(steps, prior.schedule)
    check_unit_interval("eta", eta)
    check_non_negative("guidance", guidance)
    check_non_negative("sigma_y", sigma_y)
    start = time.perf_counter()
    generator = BatchNoise(seed, y.shape[0])
    shape = image_shape(y, operator)
    correction = measurement_correction(y, operator, sigma_y, shape)
    x = randn(shape, generator, y.device)
    x_init = x.clone()
    timesteps = prior.schedule.timesteps(steps)

    history = []
    for i, t in enumerate(tqdm(timesteps, desc="pigdm", disable=not progress, leave=False)):
        eps, x0, g = pseudoinverse_guidance(prior, x, t, correction)
        eps_y = eps - prior.schedule.sigma(t) * guidance * g  # score + w g, as a noise prediction
        with torch.no_grad():
            x, x0_y = ddim_step(prior, x.detach(), t, next_timestep(timesteps, i), eta, generator, eps=eps_y,
                                clip_x0=clip_x0)
            record = {"step": i, "t": t, "misfit": (y - operator(x0)).flatten(1).norm(dim=1).mean().item()}
            if reference is not None:
                record["psnr"] = psnr_tensor(x0_y, reference)
        history.append(record)

    return SolveResult(image=x.clamp(-1, 1), init=x_init, history=history, nfe=steps, backprop=True, method="pigdm",
                       params=dict(steps=steps, eta=eta, guidance=guidance, clip_x0=clip_x0, sigma_y=sigma_y, seed=seed),
                       seconds=time.perf_counter() - start)
