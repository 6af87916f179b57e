"""HRDIS: Hybrid Regularization for Diffusion-based Inverse problem Solving (Dou et al., ICLR 2025).

Variational restoration (RED-diff's view): optimise the image mu with Adam on

    L(mu) = lambda_1 * mean(1/2 (y - A(mu))^2)  +  lambda_2 * omega_t * mean(sg(eps_theta(mu_t, t) - eps_h) * mu)

where t descends from T to 0 over N steps, mu_t = alpha_t mu + sigma_t eps_h, omega_t = sigma_t / alpha_t
(1/sqrt(SNR)), and sg is stop-gradient: the network is evaluated once per step and never differentiated.
The *hybrid noise* (paper Eq. 14, Algorithm 1)

    eps_h = sqrt(1 - beta) * eps_theta(mu_{t+eps}, t + eps) + sqrt(beta) * eps_fresh

mixes the previous step's noise prediction with fresh Gaussian noise. beta = 1 is denoising
regularisation (RED-diff, "DR"); beta = 0 is consistency regularisation ("CR"); the paper's default is 0.2.
beta may also be a per-step schedule (one value per step): DR+DDIM (``drddim``) takes it from DDIM.

Differences from the official code, where this follows the paper: the official loop skips the Adam
update at the first step and returns the estimate from before the last update; here every step
updates mu (Algorithm 1, lines 8-9) and the final mu is returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Callable

import torch
from tqdm import tqdm

from ..operators import Operator
from ..priors import Prior
from .base import BatchNoise, SolveResult, check_inputs, check_positive, check_unit_interval, psnr_tensor, randn


def hybrid_noise(eps_prev: torch.Tensor | None, eps_fresh: torch.Tensor, beta: float) -> torch.Tensor:
    """eps_h = sqrt(1 - beta) eps_prev + sqrt(beta) eps_fresh; pure fresh noise when there is no eps_prev.
    Both parts are unit-variance and (nearly) independent, so eps_h keeps unit variance."""
    if eps_prev is None:
        return eps_fresh
    return (1.0 - beta) ** 0.5 * eps_prev + beta**0.5 * eps_fresh


def per_step_beta(beta: float | Sequence[float], steps: int) -> list[float]:
    """beta as one value per step: a constant, or a schedule of exactly ``steps`` values in [0, 1]."""
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        check_unit_interval("beta", beta)
        return [float(beta)] * steps
    if isinstance(beta, torch.Tensor):
        beta = beta.tolist()
    if not isinstance(beta, Sequence) or isinstance(beta, str):
        raise ValueError(f"beta must be a number in [0, 1] or one value per step, got {beta!r}")
    if len(beta) != steps:
        raise ValueError(f"the beta schedule has {len(beta)} values for {steps} steps; give one per step")
    for b in beta:
        check_unit_interval("every beta in the schedule", b)
    return [float(b) for b in beta]


def draw_hybrid_noise(step: int, eps_prev: torch.Tensor | None, like: torch.Tensor, generator: BatchNoise | torch.Generator,
                      beta: float, fresh_noise_steps: int = 0) -> torch.Tensor:
    """eps_h for step n: fresh Gaussian noise from ``generator`` mixed with eps_prev by ``hybrid_noise``
    (pure fresh noise, beta = 1, for the first ``fresh_noise_steps`` steps)."""
    eps_fresh = randn(like.shape, generator, like.device)
    return hybrid_noise(eps_prev, eps_fresh, 1.0 if step < fresh_noise_steps else beta)


def hrdis_step(mu: torch.Tensor, optimizer: torch.optim.Optimizer, prior: Prior, t: int, eps_h: torch.Tensor,
               data_loss: Callable[[torch.Tensor], torch.Tensor], *, obs_weight: float, reg_weight: float,
               min_weight: float | None = None) -> tuple[torch.Tensor, dict]:
    """One update of mu (Algorithm 1, lines 4-9): evaluate eps_theta(mu_t, t) once, take one optimiser
    step on lambda_1 data_loss(mu) + lambda_2 omega_t mean(sg(eps_theta - eps_h) * mu).

    ``data_loss(mu)`` must sum per-image means over the batch. Returns eps_theta(mu_t, t), the next
    step's eps_prev, and the record {t, loss_obs, loss_reg, weight}.
    """
    alpha, sigma = prior.schedule.alpha(t), prior.schedule.sigma(t)
    mu_t = alpha * mu.detach() + sigma * eps_h
    with torch.no_grad():
        eps_pred = prior.eps(mu_t, t)

    loss_obs = data_loss(mu)
    loss_reg = ((eps_pred - eps_h).detach() * mu).flatten(1).mean(1).sum()
    weight = sigma / alpha  # omega_t = 1 / sqrt(SNR_t)
    if min_weight is not None:
        weight = weight.clamp_min(min_weight)
    loss = obs_weight * loss_obs + reg_weight * weight * loss_reg

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return eps_pred, {"t": t, "loss_obs": loss_obs.item(), "loss_reg": loss_reg.item(), "weight": weight.item()}


def check_settings(beta: float, lr: float, obs_weight: float, reg_weight: float) -> None:
    check_unit_interval("beta", beta)
    check_positive("lr", lr)
    for name, v in (("obs_weight", obs_weight), ("reg_weight", reg_weight)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")


def hrdis(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    *,
    steps: int = 150,
    beta: float | Sequence[float] = 0.2,
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
    """Restore x from y = A(x) + noise.

    Args:
        y: the measurement, shaped as ``operator(x)``.
        operator: A; mu starts at ``operator.initial_estimate(y)`` (A^+(y), or y itself for blur).
        prior: a diffusion prior (noise prediction eps_theta and its schedule).
        steps: N, the number of optimisation steps (one network evaluation each).
        beta: beta, the weight of fresh noise in the hybrid noise (1 = RED-diff, 0 = CR); a number,
            or a sequence of one value per step (step n mixes with beta[n]).
        obs_weight: lambda_1, the weight of the data term mean(1/2 (y - A(mu))^2).
        reg_weight: lambda_2, the weight of the diffusion regulariser.
        lr: Adam's learning rate (Adam betas (0.9, 0.99), as in the paper).
        min_weight: optional lower clip of omega_t = sigma_t / alpha_t. App. C.2 uses 2.0 for noisy
            measurements, so the regulariser does not vanish at small t and the estimate does not
            overfit the noise.
        fresh_noise_steps: the first this many steps use pure fresh noise (beta = 1); phase
            retrieval uses 250 of 500 (App. B.2).
        t_start, t_end: the timestep range (integers, default T-1 to 0); the spacing
            (t_start - t_end) / (N - 1) / T is the paper's epsilon (App. C.8).
        seed: seeds the fresh noise; the same seed gives the same result. Per image: an int s gives
            image b the seed s + b (a list gives one seed per image), so a batch restores exactly as
            single solves at those seeds.
        init: start from this image instead.
        reference: the ground truth, only to record PSNR per step (never used by the solver).
        progress: show a progress bar.
    """
    check_inputs(y, operator, prior, steps)
    betas = per_step_beta(beta, steps)
    check_settings(betas[0], lr, obs_weight, reg_weight)  # beta itself was checked by per_step_beta
    start = time.perf_counter()
    generator = BatchNoise(seed, y.shape[0])

    x_init = (operator.initial_estimate(y) if init is None else init).detach().float()
    mu = x_init.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=lr, betas=(0.9, 0.99))
    timesteps = prior.schedule.timesteps(steps, t_start, t_end)

    def data_loss(x: torch.Tensor) -> torch.Tensor:
        # Per-image means summed over the batch, so each image's gradient does not depend on B.
        return 0.5 * (y - operator(x)).pow(2).flatten(1).mean(1).sum()

    history, eps_prev = [], None
    for n, t in enumerate(tqdm(timesteps, desc="hrdis", disable=not progress, leave=False)):
        eps_h = draw_hybrid_noise(n, eps_prev, mu, generator, betas[n], fresh_noise_steps)
        eps_prev, record = hrdis_step(mu, optimizer, prior, t, eps_h, data_loss, obs_weight=obs_weight,
                                      reg_weight=reg_weight, min_weight=min_weight)
        record = {"step": n, **record}
        if reference is not None:
            record["psnr"] = psnr_tensor(mu.detach(), reference)
        history.append(record)

    return SolveResult(
        image=mu.detach().clamp(-1, 1), init=x_init, history=history, nfe=steps, backprop=False, method="hrdis",
        params=dict(steps=steps, beta=beta if isinstance(beta, (int, float)) else betas, obs_weight=obs_weight,
                    reg_weight=reg_weight, lr=lr, min_weight=min_weight,
                    fresh_noise_steps=fresh_noise_steps, t_start=t_start, t_end=t_end, seed=seed),
        seconds=time.perf_counter() - start)
