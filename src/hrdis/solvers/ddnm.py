"""DDNM and DDNM+: zero-shot restoration with the denoising diffusion null-space model (Wang, Yu & Zhang,
ICLR 2023), for linear A.

Any x with A x = y is A^+ y + (I - A^+ A) x: the measurement fixes the range-space part, the prior
only has to supply the null-space part. DDNM makes each DDIM step's x0 estimate consistent with y that way:

    x0_t    = (x_t - sigma_t eps_theta(x_t, t)) / alpha_t
    x0_hat  = A^+ y + (I - A^+ A) x0_t  =  x0_t - A^+ (A x0_t - y)
    x_s     = alpha_s x0_hat + sigma_s (eta z + sqrt(1 - eta^2) eps_theta)          (z fresh noise)

with eta = 0.85 (the official code's default) and x_T ~ N(0, I); the result is the last x0_hat, so on a
noiseless problem it fits y exactly. One network evaluation per step, no backpropagation.

DDNM+ (paper Sec. 3.3) handles y = A x + sigma_y n. In the SVD of A (``ddrm.svd_of``) the range-space
correction is scaled per singular value s_i, and so is the noise the step adds, so that the noise the
correction lets in plus the noise added make exactly the variance x_s needs (paper Eq. 16-17):

    lambda_i = 1 if sigma_s >= alpha_s sigma_y / s_i, else sigma_s s_i / (alpha_s sigma_y)
    gamma_i  = sqrt(sigma_s^2 - (alpha_s lambda_i sigma_y / s_i)^2)   on the range space, sigma_s on the null space
    V^T x0_hat = V^T x0_t - lambda * Sigma^+ U^T (A x0_t - y)
    V^T x_s    = alpha_s V^T x0_hat + gamma (eta V^T z + sqrt(1 - eta^2) V^T eps_theta)

At sigma_y = 0 this is DDNM (lambda = 1, gamma = sigma_s). DDNM+ also has the paper's time travel
(``travel_length`` L, ``travel_repeat`` r, from RePaint): at every L-th step of the grid (after the first L),
the sample is noised back L steps, x_{t_{k-L}} = sqrt(abar_{k-L} / abar_k) x_{t_k} + sqrt(1 - abar_{k-L} /
abar_k) z (noise role "travel"), and those steps are redone, r - 1 times per point; L = 1, r = 1 (the official
defaults) is no travel. NFE counts every step taken, redone ones included.

DDNM (``ddnm``) needs only A^+ (``operator.pinv``: every linear operator here); DDNM+ with sigma_y > 0 needs
an SVD (inpainting, SR, CS, blur, denoising).

Differences from the official code (wyhuai/DDNM, ``functions/svd_ddnm.py``): DDNM+ here scales per singular
value as the paper's Eq. 16-17; the official "simplified" DDNM+ uses one scalar lambda_t (exact for operators
whose nonzero singular values are all 1, such as inpainting and compressed sensing). The result is x0_hat of the
last step (t = 0) rather than a DDIM step to t = -1 from it: the two differ only by sigma at t = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..operators import Operator, is_linear
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from .base import SolveResult, check_inputs, check_positive_int, check_unit_interval
from ._common import SamplerConfig, check_grid, check_non_negative, image_shape, sampler_timesteps
from .ddrm import SVD_OPERATORS_TEXT, has_svd, svd_of
from .steplog import StepCallback, StepLog


@dataclass(frozen=True)
class DDNMConfig(SamplerConfig):
    """DDNM's parameters: ``SamplerConfig``'s (100 steps) and ``eta``, the fraction of fresh noise."""

    eta: float = 0.85

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("eta", self.eta)


@dataclass(frozen=True)
class DDNMPlusConfig(DDNMConfig):
    """DDNM+'s parameters: DDNM's, and

    sigma_y: the Gaussian measurement noise's standard deviation, in units of y (> 0 needs an SVD of A).
    travel_length: L, how many steps a time travel goes back (1 with travel_repeat 1: none).
    travel_repeat: r, how many times each travel point's last L steps are run in all.
    """

    sigma_y: float = 0.0
    travel_length: int = 1
    travel_repeat: int = 1

    def __post_init__(self):
        super().__post_init__()
        check_non_negative("sigma_y", self.sigma_y)
        check_positive_int("travel_length", self.travel_length)
        check_positive_int("travel_repeat", self.travel_repeat)


def travel_path(steps: int, length: int, repeat: int) -> list[tuple[int, int]]:
    """The grid positions a sampler visits, as moves (from, to): a step down is (k, k + 1) (position
    ``steps`` is the clean image); a time travel is (k, k - length), taken repeat - 1 times at every
    position k that is a multiple of ``length``, from ``length`` to ``steps - 1``."""
    moves, k, travelled = [], 0, {}
    while k < steps:
        moves.append((k, k + 1))
        k += 1
        if repeat > 1 and k % length == 0 and length <= k < steps and travelled.get(k, 0) < repeat - 1:
            travelled[k] = travelled.get(k, 0) + 1
            moves.append((k, k - length))
            k -= length
    return moves


def ddnm(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DDNMConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Sample x given a linear y = A x (DDNM) or y = A x + sigma_y n (DDNM+, ``DDNMPlusConfig``).
    ``seed`` (or ``randomness``) gives x_T ("initial"), each step's noise ("step") and time travels' ("travel");
    ``reference`` only records the PSNR of each step's x0_hat."""
    c = config or DDNMConfig()
    plus = isinstance(c, DDNMPlusConfig)
    name = "ddnm-plus" if plus else "ddnm"
    check_inputs(y, operator, prior, c.steps)
    if not is_linear(operator):
        raise ValueError(f"{name} needs a linear operator with a pseudo-inverse; {operator.name} is not linear")
    check_grid(c.steps, prior.schedule)
    sched = prior.schedule.in_precision(c.schedule_precision)
    timesteps = sampler_timesteps(c, sched)
    shape = image_shape(y, operator)
    sigma_y = c.sigma_y if plus else 0.0
    if sigma_y > 0 and not has_svd(operator):
        raise ValueError(f"{name} with sigma_y > 0 needs an operator with an SVD ({SVD_OPERATORS_TEXT}), not "
                         f"{type(operator).__name__}; sigma_y=0 runs its noiseless form")
    svd = svd_of(operator, tuple(shape[-2:])) if sigma_y > 0 else None
    pinv_y = operator.pinv(y).detach()
    moves = travel_path(len(timesteps), c.travel_length, c.travel_repeat) if plus else \
        [(k, k + 1) for k in range(len(timesteps))]
    log = StepLog(name, reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    x = randn(shape, source, y.device, role="initial")
    x_init = x.clone()
    abar = [sched.alpha(t).double().item() ** 2 for t in timesteps] + [1.0]
    x0_hat, nfe = None, 0

    with torch.no_grad():
        for i, (k, k_to) in log.steps(moves):
            if k_to < k:  # time travel: noise x at position k back to position k_to
                ratio = abar[k_to] / abar[k]
                x = math.sqrt(ratio) * x + math.sqrt(1 - ratio) * randn(x.shape, source, y.device, role="travel")
                continue
            t = timesteps[k]
            alpha, sigma = sched.alpha(t), sched.sigma(t)
            eps = prior.eps(x, t)
            nfe += 1
            x0_t = (x - sigma * eps) / alpha
            alpha_s, sigma_s = math.sqrt(abar[k_to]), math.sqrt(1 - abar[k_to])
            if svd is None:
                x0_hat = x0_t - (operator.pinv(operator(x0_t)) - pinv_y)  # A^+ y + (I - A^+ A) x0_t
                if k_to < len(timesteps):
                    z = randn(x.shape, source, y.device, role="step")
                    x = alpha_s * x0_hat + sigma_s * (c.eta * z + math.sqrt(1 - c.eta**2) * eps)
            else:
                x0_hat, x = noisy_step(svd, y, operator, x0_t, eps, alpha_s, sigma_s, sigma_y, c.eta, source,
                                       last=k_to == len(timesteps))
            if k_to == len(timesteps):
                x = x0_hat
            misfit = (y - operator(x0_hat)).flatten(1).norm(dim=1).mean().item()
            log.record(i, t, x=x, estimate=x0_hat, misfit=misfit)

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=nfe, backprop=False,
                      params={**c.as_dict(), "seed": seed})


def noisy_step(svd, y, operator, x0_t, eps, alpha_s: float, sigma_s: float, sigma_y: float, eta: float, source,
               last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """DDNM+'s step in the SVD basis (module docstring): (x0_hat, x_s)."""
    s = svd.singulars.to(x0_t)
    observed = s > 0
    safe_s = torch.where(observed, s, torch.ones_like(s))
    residual = torch.where(observed, svd.ut(operator(x0_t) - y) / safe_s, torch.zeros_like(s))  # Sigma^+ U^T (A x0 - y)
    noise_in_y = alpha_s * sigma_y / safe_s  # the noise level the range-space correction brings in, per coordinate
    lam = torch.where(observed & (sigma_s < noise_in_y), sigma_s / noise_in_y, torch.ones_like(s))
    x0_hat_bar = svd.vt(x0_t) - lam * residual
    x0_hat = svd.v(x0_hat_bar)
    if last:
        return x0_hat, x0_hat
    gamma = torch.where(observed, (sigma_s**2 - (lam * noise_in_y) ** 2).clamp_min(0).sqrt(),
                        torch.full_like(s, sigma_s))
    z = randn(x0_t.shape, source, x0_t.device, role="step")
    x_bar = alpha_s * x0_hat_bar + gamma * (eta * svd.vt(z) + math.sqrt(1 - eta**2) * svd.vt(eps))
    return x0_hat, svd.v(x_bar)
