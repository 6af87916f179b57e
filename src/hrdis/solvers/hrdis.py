"""HRDIS: Hybrid Regularization for Diffusion-based Inverse problem Solving (Dou et al., ICLR 2025).

Variational restoration (RED-diff's view): optimise the image mu with Adam on

    L(mu) = lambda_1 * mean(1/2 (y - A(mu))^2)  +  lambda_2 * omega_t * mean(sg(eps_theta(mu_t, t) - eps_h) * mu)

where t descends from T to 0 over N steps, mu_t = alpha_t mu + sigma_t eps_h, omega_t = sigma_t / alpha_t
(1/sqrt(SNR)), and sg is stop-gradient: the network is evaluated once per step and never differentiated.
The *hybrid noise* (paper Eq. 14, Algorithm 1)

    eps_h = sqrt(1 - beta) * eps_theta(mu_{t+eps}, t + eps) + sqrt(beta) * eps_fresh

mixes the previous step's noise prediction with fresh Gaussian noise. beta = 1 is denoising
regularisation (RED-diff, "DR"); beta = 0 is consistency regularisation ("CR"); the paper's default is 0.2.

Differences from the official code, where this follows the paper: the official loop skips the Adam
update at the first step and returns the estimate from before the last update; here every step
updates mu (Algorithm 1, lines 8-9) and the final mu is returned.
"""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from ..operators import Operator
from ..priors import Prior
from .base import SolveResult, check_inputs, check_positive, check_unit_interval, psnr_tensor


def hybrid_noise(eps_prev: torch.Tensor | None, eps_fresh: torch.Tensor, beta: float) -> torch.Tensor:
    """eps_h = sqrt(1 - beta) eps_prev + sqrt(beta) eps_fresh; pure fresh noise when there is no eps_prev.
    Both parts are unit-variance and (nearly) independent, so eps_h keeps unit variance."""
    if eps_prev is None:
        return eps_fresh
    return (1.0 - beta) ** 0.5 * eps_prev + beta**0.5 * eps_fresh


def hrdis(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    *,
    steps: int = 150,
    beta: float = 0.2,
    obs_weight: float = 1.0,
    reg_weight: float = 0.25,
    lr: float = 0.1,
    min_weight: float | None = None,
    fresh_noise_steps: int = 0,
    t_start: int | None = None,
    t_end: int = 0,
    seed: int = 0,
    init: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
) -> SolveResult:
    """Restore x from y = A(x) + noise.

    Args:
        y: the measurement, shaped as ``operator(x)``.
        operator: A, with ``pinv`` for the initialisation mu = A^+(y).
        prior: a diffusion prior (noise prediction eps_theta and its schedule).
        steps: N, the number of optimisation steps (one network evaluation each).
        beta: beta, the weight of fresh noise in the hybrid noise (1 = RED-diff, 0 = CR).
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
        seed: seeds the fresh noise; the same seed gives the same result.
        init: start from this image instead of A^+(y).
        reference: the ground truth, only to record PSNR per step (never used by the solver).
        progress: show a progress bar.
    """
    check_inputs(y, operator, prior, steps)
    check_unit_interval("beta", beta)
    check_positive("lr", lr)
    for name, v in (("obs_weight", obs_weight), ("reg_weight", reg_weight)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    start = time.perf_counter()
    schedule = prior.schedule
    generator = torch.Generator(device="cpu").manual_seed(seed)

    x_init = (operator.pinv(y) if init is None else init).detach().float()
    mu = x_init.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=lr, betas=(0.9, 0.99))
    timesteps = schedule.timesteps(steps, t_start, t_end)

    history, eps_prev = [], None
    for n, t in enumerate(tqdm(timesteps, desc="hrdis", disable=not progress, leave=False)):
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        eps_fresh = torch.randn(mu.shape, generator=generator).to(mu.device)
        step_beta = 1.0 if n < fresh_noise_steps else beta
        eps_h = hybrid_noise(eps_prev, eps_fresh, step_beta)
        mu_t = alpha * mu.detach() + sigma * eps_h
        with torch.no_grad():
            eps_pred = prior.eps(mu_t, t)

        # Per-image means summed over the batch, so each image's gradient does not depend on B.
        residual = y - operator(mu)
        loss_obs = 0.5 * residual.pow(2).flatten(1).mean(1).sum()
        loss_reg = ((eps_pred - eps_h).detach() * mu).flatten(1).mean(1).sum()
        weight = sigma / alpha  # omega_t = 1 / sqrt(SNR_t)
        if min_weight is not None:
            weight = weight.clamp_min(min_weight)
        loss = obs_weight * loss_obs + reg_weight * weight * loss_reg

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        eps_prev = eps_pred

        record = {"step": n, "t": t, "loss_obs": loss_obs.item(), "loss_reg": loss_reg.item(), "weight": weight.item()}
        if reference is not None:
            record["psnr"] = psnr_tensor(mu.detach(), reference)
        history.append(record)

    return SolveResult(
        image=mu.detach().clamp(-1, 1), init=x_init, history=history, nfe=steps, backprop=False, method="hrdis",
        params=dict(steps=steps, beta=beta, obs_weight=obs_weight, reg_weight=reg_weight, lr=lr, min_weight=min_weight,
                    fresh_noise_steps=fresh_noise_steps, t_start=t_start, t_end=t_end, seed=seed),
        seconds=time.perf_counter() - start)
