"""Unconditional sampling with DDIM (Song et al., 2021): draws from the prior itself.

x_{t'} = alpha_{t'} x0_hat + sqrt(sigma_{t'}^2 - s^2) eps_hat + s z,
s = eta * sqrt((sigma_{t'}^2 / sigma_t^2) (1 - alpha_t^2 / alpha_{t'}^2)),
where x0_hat = (x_t - sigma_t eps_hat) / alpha_t. eta = 0 is deterministic, eta = 1 is DDPM ancestral
sampling (its variance s^2 is the posterior variance beta_tilde of the strided schedule, guided-diffusion's
"fixed small"; ``learned_variance`` takes a learn_sigma network's own, ``learned_log_variance``).
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from .priors import Prior
from .randomness import randn


def learned_log_variance(v: torch.Tensor, beta: torch.Tensor, beta_tilde: torch.Tensor) -> torch.Tensor:
    """guided-diffusion's "learned_range" variance: the network's v in [-1, 1] interpolates the log variance
    between the posterior variance beta_tilde (v = -1) and beta (v = 1) of the step:
    log var = (v + 1)/2 log beta + (1 - v)/2 log beta_tilde."""
    frac = (v + 1) / 2
    return frac * torch.log(beta) + (1 - frac) * torch.log(beta_tilde)


def ddim_step(prior: Prior, x: torch.Tensor, t: int, t_next: int | None, eta: float = 0.0,
              generator=None, eps: torch.Tensor | None = None, clip_x0: bool = True,
              schedule=None, learned_variance: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step from t to t_next (None = to the clean image). Returns (x_next, x0_hat).

    ``generator``: a ``hrdis.randomness`` source or a torch generator (role "step"); ``schedule``: the
    alpha_t, sigma_t to step with (default the prior's). ``learned_variance`` (eta = 1 only): where the
    prior has a variance head, the step's noise has the learned variance (``learned_log_variance``, with
    beta = 1 - alpha_bar_t / alpha_bar_next) instead of beta_tilde; the mean is the same."""
    sched = schedule or prior.schedule
    a, s = sched.alpha(t), sched.sigma(t)
    variance = None
    if eps is None and learned_variance and eta == 1:
        eps, variance = prior.eps_and_variance(x, t)
    elif eps is None:
        eps = prior.eps(x, t)
    x0 = sched.x0(x, eps, t)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = (x - a * x0) / s  # keep eps consistent with the clipped x0
    if t_next is None:
        return x0, x0
    a_n, s_n = sched.alpha(t_next), sched.sigma(t_next)
    noise_std = eta * ((s_n**2 / s**2) * (1 - a**2 / a_n**2)).clamp_min(0).sqrt()
    x_next = a_n * x0 + (s_n**2 - noise_std**2).clamp_min(0).sqrt() * eps
    if variance is not None:
        noise_std = torch.exp(0.5 * learned_log_variance(variance, 1 - a**2 / a_n**2, noise_std**2))
    if eta > 0:
        x_next = x_next + noise_std * randn(x.shape, generator, x.device)
    return x_next, x0


def ddim_sample(prior: Prior, n: int, steps: int = 50, eta: float = 0.0, seed: int = 0, batch_size: int = 16,
                size: int | None = None, progress: bool = False) -> torch.Tensor:
    """``n`` samples (n, 3, H, W) in [-1, 1] from ``steps`` DDIM steps, deterministic for a seed."""
    size = size or prior.image_size
    if size is None:
        raise ValueError("this prior has no fixed image size; pass size=")
    generator = torch.Generator().manual_seed(seed)
    device = next((p.device for p in list(prior.parameters()) + list(prior.buffers())), torch.device("cpu"))
    timesteps = prior.schedule.timesteps(steps)
    out = []
    bar = tqdm(total=n * steps, desc="ddim", disable=not progress, unit="eval")
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x = torch.randn((b, 3, size, size), generator=generator).to(device)  # drawn on the CPU: same on any device
        with torch.no_grad():
            for i, t in enumerate(timesteps):
                t_next = timesteps[i + 1] if i + 1 < len(timesteps) else None
                x, _ = ddim_step(prior, x, t, t_next, eta, generator)
                bar.update(b)
        out.append(x.cpu())
    bar.close()
    return torch.cat(out).clamp(-1, 1)
