"""DiffPIR: denoising diffusion models for plug-and-play image restoration (Zhu, Zhang, Liang, Cao, Wen,
Timofte & Van Gool, CVPR Workshops 2023).

Half-quadratic splitting with the diffusion prior as the denoiser. At each timestep t of the grid, with
alpha_t, sigma_t of ``VPSchedule`` and sigma_bar_t = sigma_t / alpha_t:

    x0_t    = (x_t - sigma_t eps_theta(x_t, t)) / alpha_t                         (the prior's estimate)
    x0_hat  = argmin_x ||y - A x||^2 + rho_t ||x - x0_t||^2,  rho_t = lambda sigma_n^2 / sigma_bar_t^2
    eps_hat = (x_t - alpha_t x0_hat) / sigma_t
    x_s     = alpha_s x0_hat + sigma_s (sqrt(1 - zeta) eps_hat + sqrt(zeta) z)      (z fresh noise)

and the result is the last x0_hat. One network evaluation per step, no backpropagation.

The proximal step is closed-form in the SVD of A (``ddrm.svd_of``, A = U diag(s) V^T):
V^T x0_hat = (s U^T y + rho_t V^T x0_t) / (s^2 + rho_t), coordinate by coordinate, which uses each
operator's own structure: element-wise for inpainting ((m y + rho x0) / (m + rho), as the official code),
the FFT (Hartley) basis for circular blur, the separable pooling / bicubic matrices for super-resolution,
the block basis for compressed sensing. Operators without an SVD are refused.

sigma_n is the measurement noise in [0, 1] image units, as the official code measures it and as lambda was
tuned: sigma_n = sigma_y / 2 for sigma_y in units of y ([-1, 1] images), and at least ``sigma_floor``
(0.001, the official code's floor for noiseless measurements, which keeps rho_t > 0).

The grid is the official code's "quad" grid (``timestep_grid="quadratic"``): t_i = T - 1 - floor(T sqrt(i /
(N - 1))) for i < N - 1 and t = 0 last, denser near t = 0; "even" gives ``VPSchedule.timesteps``.

Differences from the official code (yuanzhi-zhu/DiffPIR, ``main_ddpir_*.py``):
- the proximal step is taken at every step, the last included (the paper's Algorithm 1), so the result is
  x0_hat of t = 0; the official code skips it at the last step and returns the network's x0 there;
- x_T ~ N(0, I) (the paper); the official code starts from the noised measurement (for inpainting and
  deblurring) or the noised bicubic upsampling of y (SR), at t = T - 1 where alpha_T is about 0.006;
- the official SR script solves the bicubic SR proximal step in the FFT domain with a blur-then-decimate
  model of the downsampler; here it is exact for this project's SR operators (average pooling, bicubic);
- eta (DDIM noise inside the sqrt(1 - zeta) part) is 0, the official default, and not a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from .base import SolveResult, check_inputs, check_positive, check_unit_interval
from ._common import check_grid, check_non_negative, image_shape
from .config import SolverConfig, check_choice
from .ddrm import svd_of
from .steplog import StepCallback, StepLog

# (lambda, zeta, steps) per task family, by the task name's prefix (first match wins): the official scripts'
# settings. Inpainting: main_ddpir_inpainting.py (lambda 1, zeta 1, 20 steps); deblurring: main_ddpir_deblur.py
# (lambda 7, zeta 0.3, 100 steps); SR: main_ddpir_sisr.py fixes zeta 0.25 and sweeps lambda over 2..12, of
# which 6 is taken here. Compressed sensing has no official setting: it observes some coefficients of an
# orthogonal basis as inpainting observes some pixels, and takes inpainting's lambda and zeta at the default 100
# steps (on the tuning faces 009501-009508, zeta 1 gave +4.1 dB over the deblurring setting's 0.3 on cs25, and
# lambda 1, 7 or 50 changed it by at most 0.02 dB: noiseless, rho_t is tiny but at the last steps; docs/RESULTS.md).
# Denoising has none and keeps the defaults.
SETTINGS_BY_TASK = {
    "inpaint": dict(lam=1.0, zeta=1.0, steps=20),
    "deblur": dict(lam=7.0, zeta=0.3, steps=100),
    "sr": dict(lam=6.0, zeta=0.25, steps=100),
    "cs": dict(lam=1.0, zeta=1.0, steps=100),
}


@dataclass(frozen=True)
class DiffPIRConfig(SolverConfig):
    """DiffPIR's parameters (module docstring).

    steps: sampling steps N (one network evaluation each).
    lam: lambda, the weight of the prior in rho_t = lambda sigma_n^2 / sigma_bar_t^2.
    zeta: the fraction of fresh noise in each re-noising (0 deterministic, 1 all fresh).
    sigma_y: the Gaussian measurement noise's standard deviation, in units of y.
    sigma_floor: the least sigma_n (in [0, 1] image units), so rho_t > 0 on noiseless measurements.
    timestep_grid: "quadratic" (the official code's) or "even".
    clamp_result: clamp the returned image to [-1, 1].
    """

    steps: int = 100
    lam: float = 7.0
    zeta: float = 0.3
    sigma_y: float = 0.0
    sigma_floor: float = 0.001
    timestep_grid: str = "quadratic"
    clamp_result: bool = True

    def __post_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 2:
            raise ValueError(f"steps must be an integer of at least 2, got {self.steps!r}")
        check_positive("lam (lambda)", self.lam)
        check_unit_interval("zeta", self.zeta)
        check_non_negative("sigma_y", self.sigma_y)
        check_positive("sigma_floor", self.sigma_floor)
        check_choice("timestep_grid", self.timestep_grid, ("quadratic", "even"))


def diffpir_task_params(task, noise) -> dict:
    """The official settings for the task's family (``SETTINGS_BY_TASK``), and sigma_y from Gaussian noise."""
    from ..noise import GaussianNoise

    params = next((dict(p) for prefix, p in SETTINGS_BY_TASK.items() if task.name.startswith(prefix)), {})
    if isinstance(noise, GaussianNoise):
        params["sigma_y"] = noise.sigma
    return params


def quadratic_timesteps(steps: int, num_timesteps: int) -> list[int]:
    """The official code's "quad" grid: T - 1 - int(sqrt(linspace(0, T^2, N))), the last one at t = 0."""
    seq = [int(v) for v in torch.linspace(0, num_timesteps**2, steps, dtype=torch.float64).sqrt().tolist()]
    seq[-1] -= 1
    return [num_timesteps - 1 - s for s in seq]


def proximal_step(svd, y: torch.Tensor, x0: torch.Tensor, rho: float) -> torch.Tensor:
    """argmin_x ||y - A x||^2 + rho ||x - x0||^2 = V (s U^T y + rho V^T x0) / (s^2 + rho), for rho > 0."""
    s = svd.singulars.to(x0)
    return svd.v((s * svd.ut(y) + rho * svd.vt(x0)) / (s**2 + rho))


def diffpir(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DiffPIRConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Restore x from y = A x + sigma_y n with DiffPIR (linear operators with an SVD, see ``ddrm.svd_of``;
    parameters: ``DiffPIRConfig``). ``seed`` (or ``randomness``) gives x_T ("initial") and the fresh noise
    ("step"); ``reference`` only records the PSNR of each step's x0_hat."""
    c = config or DiffPIRConfig()
    check_inputs(y, operator, prior, c.steps)
    check_grid(c.steps, prior.schedule)
    shape = image_shape(y, operator)
    svd = svd_of(operator, tuple(shape[-2:]))
    sched = prior.schedule
    if c.timestep_grid == "quadratic":
        timesteps = quadratic_timesteps(c.steps, sched.num_timesteps)
    else:
        timesteps = sched.timesteps(c.steps)
    sigma_n = max(c.sigma_y / 2, c.sigma_floor)  # in [0, 1] image units (module docstring)
    log = StepLog("diffpir", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    x = randn(shape, source, y.device, role="initial")
    x_init = x.clone()

    with torch.no_grad():
        for i, t in log.steps(timesteps):
            alpha, sigma = sched.alpha(t), sched.sigma(t)
            x0_t = (x - sigma * prior.eps(x, t)) / alpha
            rho = c.lam * sigma_n**2 / (sigma / alpha).item() ** 2
            x0_hat = proximal_step(svd, y, x0_t, rho)
            if i + 1 < len(timesteps):
                t_next = timesteps[i + 1]
                eps_hat = (x - alpha * x0_hat) / sigma
                z = randn(x.shape, source, y.device, role="step")
                x = sched.alpha(t_next) * x0_hat + sched.sigma(t_next) * (math.sqrt(1 - c.zeta) * eps_hat
                                                                          + math.sqrt(c.zeta) * z)
            else:
                x = x0_hat
            misfit = (y - operator(x0_hat)).flatten(1).norm(dim=1).mean().item()
            log.record(i, t, x=x, estimate=x0_hat, rho=rho, misfit=misfit)

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=len(timesteps), backprop=False,
                      params={**c.as_dict(), "seed": seed})
