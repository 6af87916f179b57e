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

How the default departs from the official code (github deng-ai-lab/HRDIS, a fork of NVlabs/RED-diff),
each difference a field of ``HRDISConfig`` that the official variant (``HRDISConfig.OFFICIAL``) sets:
- ``timestep_grid``: N evenly spaced timesteps from T - 1 to 0 (official: ``range(0, T, T // N)``
  reversed, "strided", which runs 167 iterations for N = 150);
- ``update_first_step``: every step updates mu (Algorithm 1, lines 8-9; official: the first iteration only
  stores eps_theta, so N iterations make N - 1 updates);
- ``result``: the final mu (official: x0_pred, the estimate before the last update);
- ``clamp_result``: the result is clamped to [-1, 1] (official: unclamped);
- ``loss_reduction``: per-image means summed over the batch, so an image's solve does not depend on the
  batch it is in (official: one mean over the whole batch, which through Adam's eps moves a batch-2
  result by up to 0.095);
- ``schedule_precision``: alpha_bar in float64 (official: accumulated in float32).
RED-diff's own code (``reddiff``, beta = 1) takes the same differences except the skipped first update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from .base import SolveResult, check_inputs, check_positive, check_positive_int, check_unit_interval, squared_misfit
from .config import SolverConfig, check_choice
from .steplog import StepCallback, StepLog

# omega_t's alternatives in the reference code (``denoise_term_weight``), as functions of 1/sqrt(SNR)
REG_WEIGHTINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda w: w,
    "sqrt": torch.sqrt,
    "square": torch.square,
    "log": lambda w: torch.log(w + 1.0),
    "trunc_linear": lambda w: torch.clip(w, max=1.0),
    "power2over3": lambda w: torch.pow(w, 2 / 3),
    "const": lambda w: torch.pow(w, 0.0),
}


PAPER_BETA = 0.2  # HRDIS's beta (the paper's default)


@dataclass(frozen=True)
class RegularisedConfig(SolverConfig):
    """What every method built on the HRDIS loop takes (HRDIS, RED-diff, CR, DR+DDIM, blind HRDIS); the
    defaults are the paper's inpainting row of Table 5.

    steps: N, the number of optimisation steps (one network evaluation each).
    obs_weight: lambda_1, the weight of the data term mean(1/2 (y - A(mu))^2).
    reg_weight: lambda_2, the weight of the diffusion regulariser.
    lr: Adam's learning rate for the image (Adam betas (0.9, 0.99), as in the paper).
    min_weight: optional lower clip of omega_t. App. C.2 uses 2.0 for noisy measurements, so the
        regulariser does not vanish at small t and the estimate does not overfit the noise.
    fresh_noise_steps: the first this many steps use pure fresh noise (beta = 1); phase retrieval uses 250
        of 500 (App. B.2).
    t_start, t_end: the timestep range of the even grid (default T - 1 to 0); the spacing
        (t_start - t_end) / (N - 1) / T is the paper's epsilon (App. C.8).
    """

    steps: int = 150
    obs_weight: float = 1.0
    reg_weight: float = 0.25
    lr: float = 0.1
    min_weight: float | None = None
    fresh_noise_steps: int = 0
    t_start: int | None = None
    t_end: int = 0

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_positive("lr", self.lr)
        for name in ("obs_weight", "reg_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class HRDISConfig(RegularisedConfig):
    """HRDIS's parameters: ``RegularisedConfig``'s, and

    beta: the weight of fresh noise in the hybrid noise (1 = RED-diff, 0 = CR); a number, or one value
        per step (step n mixes with beta[n]).
    sigma_x0: the reference code's perturbation of the estimate, x0_pred = mu + sigma_x0 z (0 = off).
    reg_weighting: omega_t as a function of 1/sqrt(SNR): "linear" (the paper), or the reference code's
        alternatives "sqrt", "square", "log", "trunc_linear", "power2over3", "const".
    timestep_grid ("even" or "strided"; the strided grid takes t_end only), update_first_step, result
        ("final" or "before_last_update"), clamp_result, loss_reduction ("per_image" or "batch_mean"),
        schedule_precision ("float64" or "float32"): the differences from the official code (module docstring).
    """

    beta: float | Sequence[float] = PAPER_BETA
    sigma_x0: float = 0.0
    reg_weighting: str = "linear"
    timestep_grid: str = "even"
    update_first_step: bool = True
    result: str = "final"
    clamp_result: bool = True
    loss_reduction: str = "per_image"
    schedule_precision: str = "float64"

    OFFICIAL: ClassVar[dict] = dict(timestep_grid="strided", update_first_step=False, result="before_last_update",
                                    clamp_result=False, loss_reduction="batch_mean", schedule_precision="float32")
    OFFICIAL_SOURCE: ClassVar[str] = "deng-ai-lab/HRDIS algos/HRDIS.py"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.beta, (int, float)):
            check_unit_interval("beta", self.beta)
        if not self.sigma_x0 >= 0:
            raise ValueError(f"sigma_x0 must be >= 0, got {self.sigma_x0!r}")
        check_choice("reg_weighting", self.reg_weighting, tuple(REG_WEIGHTINGS))
        check_choice("timestep_grid", self.timestep_grid, ("even", "strided"))
        check_choice("result", self.result, ("final", "before_last_update"))
        check_choice("loss_reduction", self.loss_reduction, ("per_image", "batch_mean"))
        check_choice("schedule_precision", self.schedule_precision, ("float64", "float32"))
        if self.timestep_grid == "strided" and self.t_start is not None:
            raise ValueError("t_start applies to the even grid only; the strided grid always starts below T")


@dataclass(frozen=True)
class REDDiffConfig(HRDISConfig):
    """RED-diff: HRDIS with fresh noise every step (beta = 1), 1000 steps as the HRDIS paper ran it.
    Its reference code (NVlabs/RED-diff ``algos/reddiff.py``) updates at every iteration."""

    steps: int = 1000
    beta: float | Sequence[float] = 1.0

    DEFINING: ClassVar[tuple[str, ...]] = ("steps", "beta")
    OFFICIAL: ClassVar[dict] = {k: v for k, v in HRDISConfig.OFFICIAL.items() if k != "update_first_step"}
    OFFICIAL_SOURCE: ClassVar[str] = "NVlabs/RED-diff algos/reddiff.py (as forked by deng-ai-lab/HRDIS)"


@dataclass(frozen=True)
class CRConfig(HRDISConfig):
    """Consistency regularisation: the previous prediction as the noise (beta = 0)."""

    beta: float | Sequence[float] = 0.0

    DEFINING: ClassVar[tuple[str, ...]] = ("beta",)


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


def draw_hybrid_noise(step: int, eps_prev: torch.Tensor | None, like: torch.Tensor, source: Randomness,
                      beta: float, fresh_noise_steps: int = 0) -> torch.Tensor:
    """eps_h for step n: fresh Gaussian noise from ``source`` mixed with eps_prev by ``hybrid_noise``
    (pure fresh noise, beta = 1, for the first ``fresh_noise_steps`` steps)."""
    eps_fresh = randn(like.shape, source, like.device, role="fresh")
    return hybrid_noise(eps_prev, eps_fresh, 1.0 if step < fresh_noise_steps else beta)


def data_loss_fn(y: torch.Tensor, operator: Operator, reduction: str = "per_image") -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> 1/2 mean((y - A(x))^2): per image and summed over the batch (so an image's gradient does not
    depend on the batch size), or ``reduction="batch_mean"``, one mean over the whole batch."""
    if reduction == "batch_mean":
        return lambda x: (y - operator(x)).pow(2).mean() / 2
    return lambda x: 0.5 * squared_misfit(y, operator, x).sum()


def regulariser(eps_pred: torch.Tensor, eps_h: torch.Tensor, x: torch.Tensor, reduction: str) -> torch.Tensor:
    """mean(sg(eps_theta - eps_h) * x), reduced as ``data_loss_fn``."""
    if reduction == "batch_mean":
        return torch.mul((eps_pred - eps_h).detach(), x).mean()
    return ((eps_pred - eps_h).detach() * x).flatten(1).mean(1).sum()


def hrdis_step(mu: torch.Tensor, optimizer: torch.optim.Optimizer, prior: Prior, t: int, eps_h: torch.Tensor,
               data_loss: Callable[[torch.Tensor], torch.Tensor], *, obs_weight: float, reg_weight: float,
               min_weight: float | None = None, schedule=None, x0: torch.Tensor | None = None,
               reg_weighting: str = "linear", reduction: str = "per_image",
               update: bool = True) -> tuple[torch.Tensor, dict]:
    """One update of mu (Algorithm 1, lines 4-9): evaluate eps_theta(x0_t, t) once at x0 = mu (or the given
    perturbed ``x0``, a function of mu), take one optimiser step on
    lambda_1 data_loss(x0) + lambda_2 omega_t mean(sg(eps_theta - eps_h) * x0) (none if not ``update``).

    ``schedule``: alpha_t, sigma_t (default the prior's). Returns eps_theta(x0_t, t), the next step's
    eps_prev, and the record {t, loss_obs, loss_reg, weight}.
    """
    schedule = schedule or prior.schedule
    x0 = mu if x0 is None else x0
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    x0_t = alpha * x0.detach() + sigma * eps_h
    with torch.no_grad():
        eps_pred = prior.eps(x0_t, t)
    if not update:
        return eps_pred, {"t": t}

    loss_obs = data_loss(x0)
    loss_reg = regulariser(eps_pred, eps_h, x0, reduction)
    weight = REG_WEIGHTINGS[reg_weighting](sigma / alpha)  # omega_t = 1 / sqrt(SNR_t) for "linear"
    if min_weight is not None:
        weight = weight.clamp_min(min_weight)
    loss = obs_weight * loss_obs + reg_weight * weight * loss_reg

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return eps_pred, {"t": t, "loss_obs": loss_obs.item(), "loss_reg": loss_reg.item(), "weight": weight.item()}


def hrdis_timesteps(config: HRDISConfig, schedule) -> list[int]:
    if config.timestep_grid == "strided":
        return schedule.strided_timesteps(config.steps, config.t_end)
    return schedule.timesteps(config.steps, config.t_start, config.t_end)


def hrdis(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: HRDISConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    init: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Restore x from y = A(x) + noise (parameters: ``HRDISConfig``).

    mu starts at ``operator.initial_estimate(y)`` (A^+(y), or y itself for blur), or at ``init``.
    ``seed`` seeds the fresh noise per image: an int s gives image b the seed s + b (a list gives one seed
    per image), so a batch restores exactly as single solves at those seeds; ``randomness`` replaces it
    (e.g. a ``ReplayNoise``). ``reference`` (the ground truth) only adds a per-step PSNR to the history;
    ``callback`` sees mu after every step.
    """
    c = config or HRDISConfig()
    check_inputs(y, operator, prior, c.steps)
    schedule = prior.schedule.in_precision(c.schedule_precision)
    timesteps = hrdis_timesteps(c, schedule)
    betas = per_step_beta(c.beta, len(timesteps))
    log = StepLog("hrdis", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)

    x_init = (operator.initial_estimate(y) if init is None else init).detach().float()
    mu = x_init.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=c.lr, betas=(0.9, 0.99))
    data_loss = data_loss_fn(y, operator, c.loss_reduction)

    eps_prev, x0 = None, mu
    for n, t in log.steps(timesteps):
        if c.sigma_x0 > 0:
            x0 = mu + c.sigma_x0 * randn(mu.shape, source, mu.device, role="x0_perturbation")
        if c.result == "before_last_update":  # a copy per step only where the result needs it
            x0_before = x0.detach().clone()
        eps_h = draw_hybrid_noise(n, eps_prev, mu, source, betas[n], c.fresh_noise_steps)
        eps_prev, record = hrdis_step(mu, optimizer, prior, t, eps_h, data_loss, obs_weight=c.obs_weight,
                                      reg_weight=c.reg_weight, min_weight=c.min_weight, schedule=schedule, x0=x0,
                                      reg_weighting=c.reg_weighting, reduction=c.loss_reduction,
                                      update=c.update_first_step or n > 0)
        log.record(n, t, x=mu, estimate=mu, **{k: v for k, v in record.items() if k != "t"})

    image = x0_before if c.result == "before_last_update" else mu.detach()
    params = {**c.as_dict(), "beta": c.beta if isinstance(c.beta, (int, float)) else betas, "seed": seed}
    return log.result(image.clamp(-1, 1) if c.clamp_result else image, x_init, nfe=len(timesteps),
                      backprop=False, params=params)
