"""DAPS: decoupled annealing posterior sampling (Zhang, Chu, Berner, Meng, Anandkumar & Song, CVPR 2025).

DAPS anneals a noise level sigma from sigma_max down to sigma_min (EDM's variance-exploding scaling,
x_sigma = x_0 + sigma eps) and, unlike DPS, does not follow one diffusion trajectory: each step decouples
the next noisy sample from the current one. At each level sigma_k of the annealing grid:

    x0_hat  = the probability-flow ODE of the prior from x_k at sigma_k down to sigma = 0.01 (Euler,
              ``ode_steps`` network evaluations)
    x0_y    ~ p(x_0 | x_k, y) ~ N(x_0; x0_hat, r_k^2 I) exp(-||y - A(x_0)||^2 / (2 tau^2)),  r_k = sigma_k,
              sampled by ``langevin_steps`` steps of Langevin dynamics started at x0_hat:
              x <- x + lr_k (-(x - x0_hat) / r_k^2 - grad ||y - A(x)||^2 / (2 tau^2)) + sqrt(2 lr_k) z
    x_{k+1} = x0_y + sigma_{k+1} z'    (fresh noise; sigma after the last level is 0, so the result is x0_y)

The Langevin steps use only the forward A(x) and its gradient, never the network, so DAPS works for
linear and nonlinear operators alike; NFE = steps x ode_steps, no backpropagation through the network.
lr_k decays linearly from ``lr`` at the first level to ``lr * lr_min_ratio`` at the last.
Both grids are EDM's poly-7 (rho = 7) grids: sigma_i = (sigma_max^(1/7) + i/(N-1) (sigma_min^(1/7) -
sigma_max^(1/7)))^7.

How EDM's sigma maps onto this project's VP prior: x_t = alpha_t x_0 + sigma_t eps is alpha_t times
x_0 + (sigma_t / alpha_t) eps, so the VP timestep t is the EDM noise level sigma(t) = sigma_t / alpha_t
(0.01 at t = 0, about 157 at t = 999). The network takes integer t only, so each continuous sigma is
snapped to the timestep whose sigma(t) is nearest in log sigma (``edm_timestep``), and the ODE's grid is
snapped likewise: its Euler steps run between noise levels the network was trained on, and two grid
points that snap to the same t are one point (that step is skipped and costs no evaluation). The
network's denoiser at a snapped level is D(x, sigma(t)) = (alpha_t x - sigma_t eps_theta(alpha_t x, t))
/ alpha_t. The annealing levels themselves (re-noising and r_k) keep their exact values.

Presets (``METHODS``): ``daps`` is the paper's DAPS-1K (250 annealing levels x 4 ODE steps), ``daps-4k``
its DAPS-4K (400 x 10), ``daps-light`` a CPU budget (50 x 2 = 100 NFE). Langevin settings per task are the
official code's pixel-space ones (``LANGEVIN_BY_TASK``), but for the nonlinear blur, which is another operator
than the paper's.

Differences from the official code (zhangbingliang2019/DAPS, ``sampler.py``, ``cores/mcmc.py``):
- the official code's data term is ||y - A(x)||^2 / tau^2 (no 1/2) with tau = 0.01; here the likelihood is
  N(y; A(x), tau^2 I) as in the paper, and the default tau = 0.01 / sqrt(2) gives the same gradient;
- its DAPS-1K command runs 200 annealing levels x 5 ODE steps; the presets here follow the paper's
  250 x 4 and 400 x 10;
- lr_k decays over k / N_A (k = 0..N_A - 1); the official code's ratio is k / (N_A + 1), so its last level's
  lr is slightly larger;
- the sigma-to-timestep snapping above (the official code calls an EDM-preconditioned network at any sigma);
- the official code returns zeros when the Langevin steps diverge; here that is an error that says to lower lr.

The authors' variant (``DAPSConfig.AUTHORS``, ``variant="authors"``) runs DAPS as their code does, each
difference a field: the network called at the continuous timestep of each noise level with EDM's
``VPPrecond`` scalings (``network_time="continuous"``: input x / sqrt(1 + sigma^2), timestep
(T - 1) t_VP(sigma), the prior's continuous-time scales, ``Prior.eps`` at a float t; the ODE then runs on
the exact poly-7 grid); the annealing grid of N + 1 poly-7 levels whose last, sigma_min, is dropped, in
float32 (``annealing_grid="drop_sigma_min"``); lr_k decaying over k / (N + 1) (``lr_decay="n_plus_one"``);
the unclamped result (``clamp_result``); their data term ||y - A(x)||^2 / tau^2 with tau = 0.01, the same
gradient as the default's, computed as they do (``data_term="authors"``). Measured on the DAPS fixtures
(``scripts/parity.py ../shared/fixtures/parity-daps``): docs/RESULTS.md, "Faithfulness".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from .base import SolveResult, check_inputs, check_positive, check_positive_int
from ._common import image_shape
from .config import SolverConfig, check_choice
from .steplog import StepCallback, StepLog

# The official code's pixel-space Langevin settings (configs/task/*.yaml, "pixel"): step size lr and
# steps per level, by the task name's prefix (first match wins). Tasks the paper has no setting for take
# the nearest one: free-form inpainting the box's, compressed sensing and denoising the SR one.
# deblur-nonlinear is the exception: the paper's nonlinear blur is a learned blur network, this project's a
# motion blur behind a camera response (``tasks``), so the official lr (1e-5) is not its. Its lr was chosen on
# the tuning faces 009501-009508 with daps-light at 64 px: PSNR 26.93 / 29.39 / 30.42 / 13.69 (diverged) dB at
# lr 1e-5 / 5e-5 / 2.5e-4 / 1e-3 (docs/RESULTS.md, "Settings chosen at 64 px for the new peers"); other sizes
# are untested.
LANGEVIN_BY_TASK = {
    "inpaint-random": dict(lr=1e-4),
    "inpaint": dict(lr=5e-5),
    "sr": dict(lr=1e-4),
    "cs": dict(lr=1e-4),
    "denoise": dict(lr=1e-4),
    "deblur-gauss": dict(lr=1e-4),
    "deblur-motion": dict(lr=5e-5),
    "deblur-nonlinear": dict(lr=2.5e-4, langevin_steps=200),
    "phase": dict(lr=5e-5),
    "hdr": dict(lr=2e-5),
}


@dataclass(frozen=True)
class DAPSConfig(SolverConfig):
    """DAPS's parameters (module docstring). The defaults are the paper's DAPS-1K.

    steps: annealing levels N_A (one ODE solve and one Langevin run each).
    ode_steps: Euler steps of the probability-flow ODE per level (network evaluations per level).
    sigma_max, sigma_min: the annealing range (EDM sigma); sigma_ode_min: where each ODE solve stops.
    langevin_steps: Langevin steps per level (no network evaluations).
    lr: the Langevin step size at the first level; lr_min_ratio: its fraction at the last level.
    tau: the measurement noise the likelihood assumes, in units of y.
    clamp_result: clamp the returned sample to [-1, 1].
    network_time: "snapped" (each noise level snapped to the nearest integer VP timestep, the network as
        trained) or "continuous" (the authors' EDM preconditioning: the network at the continuous timestep
        of each exact level, ``continuous_denoiser``).
    annealing_grid: "to_sigma_min" (``steps`` poly-7 levels from sigma_max to sigma_min) or
        "drop_sigma_min" (``steps`` + 1 poly-7 levels, the last dropped, rounded to float32: the authors').
    lr_decay: "n" (lr_k = lr (1 + k / N (lr_min_ratio - 1))) or "n_plus_one" (k / (N + 1), the authors').
    data_term: "gaussian" (||y - A(x)||^2 / (2 tau^2), the paper's likelihood) or "authors" (||y - A(x)||^2 /
        tau^2 with the authors' tau = 0.01, their score computed term by term as they do).
    """

    steps: int = 250
    ode_steps: int = 4
    sigma_max: float = 100.0
    sigma_min: float = 0.1
    sigma_ode_min: float = 0.01
    langevin_steps: int = 100
    lr: float = 1e-4
    lr_min_ratio: float = 0.01
    tau: float = 0.01 / math.sqrt(2)
    clamp_result: bool = True
    network_time: str = "snapped"
    annealing_grid: str = "to_sigma_min"
    lr_decay: str = "n"
    data_term: str = "gaussian"

    AUTHORS: ClassVar[dict] = dict(network_time="continuous", annealing_grid="drop_sigma_min", lr_decay="n_plus_one",
                                   clamp_result=False, data_term="authors", tau=0.01)
    AUTHORS_SOURCE: ClassVar[str] = "zhangbingliang2019/DAPS sampler.py DAPS.sample (the DAPS authors' code, pixel space)"

    def __post_init__(self):
        check_choice("network_time", self.network_time, ("snapped", "continuous"))
        check_choice("annealing_grid", self.annealing_grid, ("to_sigma_min", "drop_sigma_min"))
        check_choice("lr_decay", self.lr_decay, ("n", "n_plus_one"))
        check_choice("data_term", self.data_term, ("gaussian", "authors"))
        check_positive_int("steps", self.steps)
        check_positive_int("ode_steps", self.ode_steps)
        check_positive_int("langevin_steps", self.langevin_steps)
        for name in ("sigma_max", "sigma_min", "sigma_ode_min", "lr", "lr_min_ratio", "tau"):
            check_positive(name, getattr(self, name))
        if not self.sigma_ode_min <= self.sigma_min <= self.sigma_max:
            raise ValueError(f"DAPS needs sigma_ode_min <= sigma_min <= sigma_max, got {self.sigma_ode_min}, "
                             f"{self.sigma_min}, {self.sigma_max}")


@dataclass(frozen=True)
class DAPS4KConfig(DAPSConfig):
    """The paper's DAPS-4K: 400 annealing levels x 10 ODE steps."""

    steps: int = 400
    ode_steps: int = 10

    DEFINING: ClassVar[tuple[str, ...]] = ("steps", "ode_steps")


@dataclass(frozen=True)
class DAPSLightConfig(DAPSConfig):
    """A CPU budget: 50 annealing levels x 2 ODE steps (100 NFE); not from the paper."""

    steps: int = 50
    ode_steps: int = 2

    DEFINING: ClassVar[tuple[str, ...]] = ("steps", "ode_steps")


def daps_task_params(task, noise) -> dict:
    """The official code's Langevin settings for ``task`` (``LANGEVIN_BY_TASK``), else the defaults."""
    for prefix, params in LANGEVIN_BY_TASK.items():
        if task.name.startswith(prefix):
            return dict(params)
    return {}


def poly7_grid(sigma_max: float, sigma_min: float, n: int) -> list[float]:
    """EDM's grid of n noise levels from sigma_max to sigma_min, uniform in sigma^(1/7)."""
    if n == 1:
        return [sigma_max]
    hi, lo = sigma_max ** (1 / 7), sigma_min ** (1 / 7)
    return [(hi + i / (n - 1) * (lo - hi)) ** 7 for i in range(n)]


def edm_sigmas(schedule) -> torch.Tensor:
    """sigma(t) = sigma_t / alpha_t for t = 0..T-1 (float64): the EDM noise level of each VP timestep."""
    abar = schedule.alpha_bar
    return ((1 - abar) / abar).sqrt()


def edm_timestep(sigma: float, sigmas: torch.Tensor) -> int:
    """The VP timestep whose EDM noise level is nearest to ``sigma`` in log sigma."""
    return int((sigmas.log() - math.log(sigma)).abs().argmin())


def edm_denoiser(prior: Prior, x: torch.Tensor, t: int) -> torch.Tensor:
    """D(x, sigma(t)): the prior's x_0 estimate for x = x_0 + sigma(t) eps (EDM scaling) at VP timestep t."""
    alpha, sigma = prior.schedule.alpha(t), prior.schedule.sigma(t)
    x_vp = alpha * x
    return (x_vp - sigma * prior.eps(x_vp, t)) / alpha


def probability_flow(prior: Prior, x: torch.Tensor, sigma: float, sigma_end: float, steps: int,
                     sigmas: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Euler steps of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma from ``sigma`` to
    ``sigma_end`` on the poly-7 grid snapped to VP timesteps. Returns (x at sigma_end, network evaluations)."""
    ts = [edm_timestep(s, sigmas) for s in poly7_grid(sigma, sigma_end, steps + 1)]
    evaluations = 0
    for t, t_next in zip(ts, ts[1:]):
        if t_next == t:  # both grid points snap to one level: no step to take
            continue
        s, s_next = sigmas[t].item(), sigmas[t_next].item()
        x = x + (s_next - s) * (x - edm_denoiser(prior, x, t)) / s
        evaluations += 1
    return x, evaluations


def continuous_timestep(sigma: torch.Tensor, schedule) -> torch.Tensor:
    """The continuous VP timestep (T - 1) t_VP of EDM noise level sigma (EDM's ``VPPrecond.sigma_inv``,
    float32 as there): t_VP = (sqrt(beta_min^2 + 2 beta_d log(1 + sigma^2)) - beta_min) / beta_d, the
    inverse of sigma(t) = sqrt(1 / alpha_bar(t) - 1) for ``VPSchedule.continuous_alpha_bar``."""
    beta_min = schedule.num_timesteps * schedule.beta_start
    beta_d = schedule.num_timesteps * (schedule.beta_end - schedule.beta_start)
    u = ((beta_min**2 + 2 * beta_d * (1 + sigma**2).log()).sqrt() - beta_min) / beta_d
    return (schedule.num_timesteps - 1) * u


def continuous_denoiser(prior: Prior, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """D(x, sigma) with EDM's ``VPPrecond`` (the DAPS authors' network): eps at the continuous timestep of
    sigma for the input x / sqrt(1 + sigma^2), D = x - sigma eps."""
    sigma = torch.tensor(sigma, dtype=torch.float32)
    c_in = 1 / (sigma**2 + 1).sqrt()
    t = continuous_timestep(sigma, prior.schedule)
    return x - sigma.to(x.device) * prior.eps(c_in.to(x.device) * x, t.expand(x.shape[0]).to(x.device))


def continuous_probability_flow(prior: Prior, x: torch.Tensor, sigma: float, sigma_end: float,
                                steps: int) -> tuple[torch.Tensor, int]:
    """Euler steps of dx/dsigma = (x - D(x, sigma)) / sigma on the exact poly-7 grid from ``sigma`` to
    ``sigma_end``, D the ``continuous_denoiser`` (as the authors' torchdiffeq Euler with their score). The
    grid is computed in float32 as the authors' EDM scheduler does (its end points then sit 1e-7 relative
    off sigma and sigma_end)."""
    r = torch.linspace(0, 1, steps + 1)
    hi, lo = torch.tensor(sigma) ** (1 / 7), torch.tensor(sigma_end) ** (1 / 7)
    grid = ((hi + r * (lo - hi)) ** 7).tolist()
    for s, s_next in zip(grid, grid[1:]):
        t32 = torch.tensor(s, dtype=torch.float32)
        score = (continuous_denoiser(prior, x, s) - x) / t32**2
        x = x + (s_next - s) * (-t32 * score)
    return x, steps


def langevin(x0_hat: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, operator: Operator, r: float, lr: float,
             c: DAPSConfig, source) -> tuple[torch.Tensor, torch.Tensor]:
    """Langevin samples of N(x; x0_hat, r^2 I) exp(-||y - A(x)||^2 / (2 tau^2)), started at x0_hat (with
    ``data_term="authors"``: exp(-||y - A(x)||^2 / tau^2), the authors' score term by term:
    -grad / tau^2 + (x_t - x) / r^2 + (x0_hat - x_t) / r^2). Returns (the sample, its per-image misfit)."""
    x = x0_hat.clone()
    for _ in range(c.langevin_steps):
        x = x.detach().requires_grad_(True)
        if c.data_term == "authors":
            (grad,) = torch.autograd.grad((operator(x) - y).pow(2).sum(), x)
            with torch.no_grad():
                score = -grad / c.tau**2 + (x_t - x) / r**2 + (x0_hat - x_t) / r**2
        else:
            misfit = (y - operator(x)).flatten(1).pow(2).sum(1)
            (grad,) = torch.autograd.grad(misfit.sum() / (2 * c.tau**2), x)
            with torch.no_grad():
                score = -grad - (x - x0_hat) / r**2
        with torch.no_grad():
            x = x + lr * score + math.sqrt(2 * lr) * randn(x.shape, source, x.device, role="langevin")
    with torch.no_grad():
        misfit = (y - operator(x)).flatten(1).norm(dim=1)
    return x.detach(), misfit


def daps(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DAPSConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Sample x given y = A(x) + noise with DAPS (parameters: ``DAPSConfig``; any operator with a
    differentiable forward). ``seed`` (or ``randomness``) gives the start, the re-noising ("step") and the
    Langevin noise ("langevin"); ``reference`` only records the PSNR of each level's x0_y."""
    c = config or DAPSConfig()
    check_inputs(y, operator, prior, c.steps)
    sigmas = edm_sigmas(prior.schedule)
    if c.sigma_max > sigmas[-1].item() * 1.5 or c.sigma_ode_min < sigmas[0].item() / 1.5:
        raise ValueError(f"DAPS's sigma range [{c.sigma_ode_min}, {c.sigma_max}] lies outside the prior's "
                         f"[{sigmas[0].item():.3g}, {sigmas[-1].item():.3g}]; choose sigma_max and sigma_ode_min "
                         "within it")
    if c.annealing_grid == "to_sigma_min":
        levels = poly7_grid(c.sigma_max, c.sigma_min, c.steps) + [0.0]
    else:
        levels = [float(torch.tensor(v, dtype=torch.float32)) for v in poly7_grid(c.sigma_max, c.sigma_min, c.steps + 1)]
        levels = levels[:-1] + [0.0]
    log = StepLog("daps", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    x = c.sigma_max * randn(image_shape(y, operator), source, y.device, role="initial")
    x_init = x.clone()
    nfe = 0

    for k, sigma in log.steps(levels[:-1]):
        with torch.no_grad():
            if c.network_time == "continuous":
                x0_hat, evaluations = continuous_probability_flow(prior, x, sigma, c.sigma_ode_min, c.ode_steps)
            else:
                x0_hat, evaluations = probability_flow(prior, x, sigma, c.sigma_ode_min, c.ode_steps, sigmas)
        nfe += evaluations
        ratio = k / (c.steps + 1 if c.lr_decay == "n_plus_one" else c.steps)
        lr = c.lr * (1 + ratio * (c.lr_min_ratio - 1))
        x0_y, misfit = langevin(x0_hat, x, y, operator, sigma, lr, c, source)
        if not torch.isfinite(x0_y).all():
            raise ValueError(f"DAPS's Langevin steps diverged at sigma {sigma:.3g} (lr {lr:.3g}); lower lr")
        x = x0_y + levels[k + 1] * randn(x0_y.shape, source, y.device, role="step") if levels[k + 1] > 0 else x0_y
        log.record(k, edm_timestep(sigma, sigmas), x=x, estimate=x0_y, sigma=sigma, misfit=misfit.mean().item())

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=nfe, backprop=False,
                      params={**c.as_dict(), "seed": seed})
