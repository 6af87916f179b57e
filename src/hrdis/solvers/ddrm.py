"""DDRM: Denoising Diffusion Restoration Models (Kawar, Elad, Ermon & Song, NeurIPS 2022).

For a linear A = U diag(s) V^T and y = A x + sigma_y n, DDRM runs the diffusion in the spectral
coordinates of V, in the variance-exploding scaling x_bar_t = x_t / alpha_t = x_0 + l_t eps
(l_t = sigma_t / alpha_t). With x0_bar = V^T x0_hat, eps_bar = V^T eps_theta(x_t, t), the measurement
y_bar_i = (U^T y)_i / s_i and z ~ N(0, I), one step from l_t to l_s sets each coordinate i by
(paper Eq. 7-8, as in the official code):

    s_i = 0 (null space):            x0_bar_i + sqrt(1 - eta^2) l_s eps_bar_i + eta l_s z_i
    s_i > 0, l_s < sigma_y / s_i:    x0_bar_i + sqrt(1 - eta^2) l_s (y_bar_i - x0_bar_i) s_i / sigma_y + eta l_s z_i
    s_i > 0, l_s >= sigma_y / s_i:   eta_b y_bar_i + (1 - eta_b) x0_bar_i + sqrt(l_s^2 - eta_b^2 sigma_y^2 / s_i^2) z_i

then x_s = alpha_s V x_bar_s. It starts from x_bar_T = y_bar + sqrt(l_T^2 - sigma_y^2/s^2) z on the
observed coordinates (l_T z elsewhere) and ends at l = 0. No gradients: one network evaluation a step.

``svd_of(operator, size)`` gives the SVD of the operators here, per channel (every operator acts on
each channel alike): inpainting (V = I, s = the mask), average-pooling and bicubic super-resolution
(separable: A = D_h (x) D_w, so the SVD is the Kronecker product of the 1-D matrices' SVDs), block
compressed sensing (phi has orthonormal rows: U = I, s = 1, V^T = phi completed to an orthonormal basis
by QR), circular blur (V^T = the 2-D Hartley transform, s = |K|, see ``_circulant_svd``) and denoising
(identity). An operator can supply its own with a ``svd(size)`` method.

Differences from the official code (DDRM as RED-diff's and the HRDIS fork's ``algos/ddrm.py`` runs it), each a
field of ``DDRMConfig`` that the official variant (``DDRMConfig.OFFICIAL``) sets:
- ``strict_cases``: with sigma_y = 0 the last step (l_s = 0) takes the third case (>=), so the observed
  coordinates end exactly at y_bar, as the paper's p(x_0 | x_1, y); the official code's strict inequalities
  send every coordinate to the first case there, leaving the network's last x0 estimate;
- ``start``: x_T = alpha_T V(x_bar_T) (the paper); the official code starts from V(x_bar_T / l_T);
- ``noise_per_case``: one noise draw per step; the official code draws one per case (the same
  distribution; it matters only to replay its random numbers);
- the strided grid, the float32 schedule and the unclamped result of the reference samplers.
sigma_y is in the units of y ([-1, 1] images): the reference code's config value is in [0, 1] units and
doubled, so give twice that value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from .base import SolveResult, check_inputs, check_unit_interval
from ._common import (REFERENCE_SAMPLER, SamplerConfig, check_grid, check_non_negative, image_shape,
                      sampler_timesteps)
from .config import check_choice
from .steplog import StepCallback, StepLog
from ..svd import SVD  # noqa: F401  (re-exported: DDRM's spectral form)

SVD_OPERATORS_TEXT = "inpainting, SR, CS, blur, denoising"  # the operators here that have one
NO_SVD = f"DDRM needs an operator with an SVD ({SVD_OPERATORS_TEXT})"


def has_svd(operator: Operator) -> bool:
    return bool(getattr(operator, "has_svd", False))


def svd_of(operator: Operator, size: tuple[int, int]) -> SVD:
    """The SVD of ``operator`` acting on H x W images (``Operator.svd``); a one-line ValueError if it has none."""
    if not has_svd(operator):
        raise ValueError(f"{NO_SVD}, not {type(operator).__name__}")
    return operator.svd(tuple(size))


def ddrm_step(svd: SVD, x0: Tensor, eps: Tensor, y_bar: Tensor, level_next: float, eta: float, eta_b: float,
              sigma_y: float, noise: Tensor) -> Tensor:
    """x_bar at the next level l_s = ``level_next`` in spectral coordinates (the three cases above)."""
    s = svd.singulars.to(x0)
    x0_bar, eps_bar = svd.vt(x0), svd.vt(eps)
    observed = s > 0
    null_case = x0_bar + level_next * ((1 - eta**2) ** 0.5 * eps_bar + eta * noise)
    # sigma_y / s_i: the measurement's own noise level on coordinate i (inf on the null space)
    y_level = sigma_y / s.clamp_min(1e-12)
    less_noisy = x0_bar + level_next * ((1 - eta**2) ** 0.5 * (y_bar - x0_bar) / y_level.clamp_min(1e-12) + eta * noise)
    noisier = (eta_b * y_bar + (1 - eta_b) * x0_bar
               + (level_next**2 - eta_b**2 * y_level**2).clamp_min(0).sqrt() * noise)
    below_y = level_next < y_level
    return torch.where(~observed, null_case, torch.where(below_y, less_noisy, noisier))


def reference_ddrm_step(svd: SVD, x0: Tensor, eps: Tensor, uty: Tensor, level_next: float, eta: float,
                        eta_b: float, sigma_y: float, source: Randomness) -> Tensor:
    """The official code's step (``algos/ddrm.py``) in spectral coordinates: strict inequalities between
    s_i l_s and sigma_y choose the case (ties, e.g. every coordinate at the last step when sigma_y = 0, take
    the first case), and each case draws its own noise: "step" for every coordinate, "less_noisy" for those
    less noisy than y, and "noisier", shaped like U^T y, for those noisier than y."""
    s = svd.singulars.to(x0)
    vt_x0, vt_eps = svd.vt(x0), svd.vt(eps)
    shape = vt_x0.shape
    in_measurement = torch.ones_like(s, dtype=torch.bool)
    if svd.measured is not None:
        in_measurement[..., svd.measured:] = False
    before = in_measurement & (s * level_next > sigma_y)  # noisier than y
    after = in_measurement & (s * level_next < sigma_y)  # less noisy than y

    std = level_next * eta
    sigma_tilde = (level_next**2 - std**2) ** 0.5
    x_next = vt_x0 + sigma_tilde * vt_eps + std * randn(shape, source, x0.device, role="step")

    # Both case draws are made at every step, empty or not, as the official code makes them.
    after_full = after.expand(shape)
    less_noisy_draw = randn((shape[0], int(after_full[0].sum())), source, x0.device, role="less_noisy")
    if after_full.any():
        sy = torch.tensor(sigma_y, dtype=x0.dtype)
        less_noisy = vt_x0 + sigma_tilde * ((uty - vt_x0 * s) / sy) + std * _scattered(after_full, less_noisy_draw)
        x_next = torch.where(after_full, less_noisy, x_next)
    before_full = before.expand(shape)
    measured = svd.measured if svd.measured is not None else shape[1] * shape[2]
    noisier_draw = randn((shape[0], measured), source, x0.device, role="noisier")
    if before_full.any():
        s_safe = torch.where(before, s, torch.ones_like(s))
        spread = (level_next**2 - sigma_y**2 / s_safe**2 * eta_b**2).sqrt()
        noisier_draw = F.pad(noisier_draw, (0, shape[1] * shape[2] - measured)).reshape(shape)
        noisier = uty / s_safe * eta_b + (1 - eta_b) * vt_x0 + spread * noisier_draw
        x_next = torch.where(before_full, noisier, x_next)
    return x_next


def _scattered(mask: Tensor, values: Tensor) -> Tensor:
    """Zeros shaped like ``mask`` with ``values`` (B, count) placed, in order, where it is True."""
    out = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
    out[mask] = values.flatten()
    return out


@dataclass(frozen=True)
class DDRMConfig(SamplerConfig):
    """DDRM's parameters: ``SamplerConfig``'s (100 steps, as the HRDIS paper ran it; 20 in DDRM's paper), and

    eta: stochasticity on the null space and on coordinates less noisy than y (0.85).
    eta_b: how far coordinates noisier than y move onto the measurement (1.0 = onto it).
    sigma_y: the measurement noise standard deviation, in units of y.
    start: "paper" (x_T = alpha_T V x_bar_T) or "reference" (the official code's V(x_bar_T / l_T)).
    strict_cases, noise_per_case: the official code's case selection and noise draws (module docstring).
    """

    eta: float = 0.85
    eta_b: float = 1.0
    sigma_y: float = 0.0
    start: str = "paper"
    strict_cases: bool = False
    noise_per_case: bool = False

    OFFICIAL: ClassVar[dict] = dict(REFERENCE_SAMPLER, start="reference", strict_cases=True, noise_per_case=True)
    OFFICIAL_SOURCE: ClassVar[str] = "NVlabs/RED-diff algos/ddrm.py (as forked by deng-ai-lab/HRDIS)"

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("eta", self.eta)
        check_unit_interval("eta_b", self.eta_b)
        check_non_negative("sigma_y", self.sigma_y)
        check_choice("start", self.start, ("paper", "reference"))
        if self.strict_cases != self.noise_per_case:
            raise ValueError("DDRM's strict_cases and noise_per_case go together (the official code's step); "
                             "set both or neither")


def ddrm(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DDRMConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Sample x given y = A x + sigma_y n with DDRM (linear operators with an SVD, see ``svd_of``; parameters:
    ``DDRMConfig``). ``seed`` (or ``randomness``) gives x_T and every step's noise; ``reference`` only records
    the PSNR of x0_hat per step."""
    c = config or DDRMConfig()
    check_inputs(y, operator, prior, c.steps)
    check_grid(c.steps, prior.schedule)
    shape = image_shape(y, operator)
    svd = svd_of(operator, tuple(shape[-2:]))
    sched = prior.schedule.in_precision(c.schedule_precision)
    log = StepLog("ddrm", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    coordinates = svd.coordinate_shape(shape[0], shape[1])

    s = svd.singulars.to(y)
    observed = s > 0
    uty = svd.ut(y)
    y_bar = torch.where(observed, uty / s.clamp_min(1e-12), torch.zeros(()).to(y))  # Sigma^+ U^T y
    timesteps = sampler_timesteps(c, sched)
    levels = [(sched.sigma(t) / sched.alpha(t)).item() for t in timesteps] + [0.0]  # l_t, ending at l = 0
    alphas = [sched.alpha(t).item() for t in timesteps] + [1.0]
    x = ddrm_start(c, svd, y_bar, levels[0], alphas[0], randn(coordinates, source, y.device, role="initial"))
    x_init = x.clone()

    with torch.no_grad():
        for i, t in log.steps(timesteps):
            eps = prior.eps(x, t)
            x0 = sched.x0(x, eps, t)
            if c.strict_cases:
                x_bar = reference_ddrm_step(svd, x0, eps, uty, levels[i + 1], c.eta, c.eta_b, c.sigma_y, source)
            else:
                x_bar = ddrm_step(svd, x0, eps, y_bar, levels[i + 1], c.eta, c.eta_b, c.sigma_y,
                                  randn(coordinates, source, y.device, role="step"))
            x = alphas[i + 1] * svd.v(x_bar)
            log.record(i, t, x=x, estimate=x0)

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=len(timesteps), backprop=False,
                      params={**c.as_dict(), "seed": seed})


def ddrm_start(c: DDRMConfig, svd: SVD, y_bar: Tensor, level: float, alpha: float, z: Tensor) -> Tensor:
    """x_T from p(x_T | y): the measurement plus the noise it lacks on observed coordinates, pure noise
    elsewhere; times alpha_T ("paper"), or divided by l_T ("reference", the official code)."""
    s = svd.singulars.to(y_bar)
    y_level = c.sigma_y / s.clamp_min(1e-12)
    fits = (s > 0) & (y_level < level)
    if c.start == "paper":
        x_bar = torch.where(fits, y_bar, 0.0) + torch.where(fits, (level**2 - y_level**2).clamp_min(0).sqrt(),
                                                            level) * z
        return alpha * svd.v(x_bar)
    fits = s * level > c.sigma_y
    inverse = torch.where(fits, c.sigma_y / torch.where(fits, s, torch.ones_like(s)), torch.zeros_like(s))
    remaining = (level**2 - inverse**2).clamp_min(0.0).sqrt()
    return svd.v((torch.where(fits, y_bar, 0.0) + remaining * z) / level)
