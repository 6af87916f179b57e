"""Blind HRDIS: restore x from y = f x + M when the gain f and the offset map M are unknown (App. C.7).

The degradation is ``nonlinear.BlindGainOffset``'s, in intensities (y + 1) / 2 = f (x + 1) / 2 + M,
written A_{f,M}(x). As in the paper (after GDP), f, M and the image mu are updated alternately, once
per step, on the data term D = mean(1/2 (y - A_{f,M}(mu))^2):

1. (f, M) <- one Adam step on D with mu fixed (and clipped to [-1, 1], the image it stands for), but
   only at small t (``estimate_below``, default t < 100 of 1000; see below);
2. mu <- one HRDIS step (``hrdis_step``: hybrid noise, lambda_1 D + lambda_2 omega_t mean(sg(eps_theta(mu_t, t)
   - eps_h) mu)) with f and M fixed.

Parameterisation, so that the unknowns cannot trade places:

- f = exp(log f): positive, and Adam's step is relative (gain_lr = 0.03 moves f by at most ~3% a step);
- M = bicubic upsampling of an offset_grid x offset_grid map per channel: smooth by construction, so M
  can take a veil or a vignette but not the image's edges, whose contrast must then come from f mu.

Why f and M wait for small t (a departure from the paper, which alternates at every step): at large t
the regulariser pulls mu towards the denoiser's blurry mean face, which has less contrast than the
truth. Updated then, f grows to explain y's contrast with that flat mu, and the data term then holds mu
flat: a runaway that took f from ~0.3 to ~0.7 and the result from the start's 23 dB to 11 dB on held-out
faces (docs/RESULTS.md, "Blind low light"). Near t = 0 the denoiser barely changes mu, so (f, M) fit
the image the prior has settled on.

What no parameterisation fixes: f x + M = f (x + c) + (M - f c) for any field c that M's grid can
represent, so the image's mean brightness and broad shading come from the prior alone.

Initialisation (no ground truth, nothing from the operator's own f and M): the observation's 1st-99th
percentile spread of intensities, divided by that of a well-exposed face (0.9: the median over 300
CelebA training faces, 10-90% of them between 0.80 and 0.98), gives f_0; M_0 is the constant that maps
y's 1st percentile to a face's (0.02); mu_0 = A_{f_0,M_0}^-1(y) is thus an auto-contrast stretch of y.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..operators import Identity, Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source
from .base import SolveResult, check_inputs, check_positive, check_positive_int, check_unit_interval, squared_misfit
from .hrdis import PAPER_BETA, RegularisedConfig, draw_hybrid_noise, hrdis_step
from .steplog import StepCallback, StepLog

# Intensity percentiles of a well-exposed face (see the module docstring).
REFERENCE_LOW, REFERENCE_SPREAD = 0.02, 0.9


def initial_gain_offset(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust (f_0, M_0) per image, shapes (B, 1, 1, 1): percentiles ignore outliers and hot pixels."""
    intensity = ((y + 1) / 2).flatten(1)
    low, high = torch.quantile(intensity, torch.tensor([0.01, 0.99], dtype=intensity.dtype), dim=1)
    gain = ((high - low) / REFERENCE_SPREAD).clamp(0.02, 2.0)
    offset = low - gain * REFERENCE_LOW
    return gain.view(-1, 1, 1, 1), offset.view(-1, 1, 1, 1)


def smooth_offset(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """M: the (B, C, g, g) grid bicubically upsampled to the image size."""
    if grid.shape[-1] == 1:
        return grid.expand(*grid.shape[:2], *size)
    return F.interpolate(grid, size=size, mode="bicubic", align_corners=True)


@dataclass(frozen=True)
class BlindConfig(RegularisedConfig):
    """Blind HRDIS's parameters: ``RegularisedConfig``'s (lr is the image's Adam learning rate), beta as for
    HRDIS, and

    gain_lr: Adam learning rate of log f.
    offset_lr: Adam learning rate of M's grid, in intensity units.
    offset_grid: side g of M's grid (1: a constant offset per channel).
    gain_init: start from this f instead of the percentile estimate.
    estimate_below: update f and M only at timesteps t below this; the schedule's T (1000) updates them at
        every step, as in the paper, which drifts (see the module docstring).
    """

    steps: int = 300
    beta: float = PAPER_BETA
    gain_lr: float = 0.03
    offset_lr: float = 0.03
    offset_grid: int = 4
    gain_init: float | None = None
    estimate_below: int = 100

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("beta", self.beta)
        for name in ("gain_lr", "offset_lr"):
            check_positive(name, getattr(self, name))
        check_positive_int("offset_grid", self.offset_grid)
        if self.gain_init is not None:
            check_positive("gain_init", self.gain_init)
        check_positive_int("estimate_below", self.estimate_below)


def has_gain_and_offset(operator) -> bool:
    """Whether ``operator`` is of the form y = A_{f, M}(x) with ``with_parameters(x, f, M)`` (``BlindGainOffset``)."""
    return callable(getattr(operator, "with_parameters", None))


def hrdis_blind(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: BlindConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    init: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Restore x and estimate f and M from y = f x + M (see the module docstring; parameters: ``BlindConfig``).

    ``operator``: a ``BlindGainOffset``; only its form is used, never its own f and M. ``init``: start the
    image from this instead of (y - M_0) / f_0. ``seed``, ``randomness``, ``reference``, ``callback``: as for
    ``hrdis``.

    ``extras`` holds ``gain`` (f per image), ``offset`` (M, (B, 3, H, W) intensities) and ``residual``
    (per-image RMS of y - A_{f,M}(image) under the estimated f and M).
    """
    c = config or BlindConfig()
    if not has_gain_and_offset(operator):
        raise ValueError(f"hrdis-blind estimates the gain and offset of a gain-offset operator (BlindGainOffset), got "
                         f"{type(operator).__name__}; use method hrdis for known operators")
    check_inputs(y, Identity(), prior, c.steps)  # the shapes of y and the image agree; the operator's pinv is an oracle
    log = StepLog("hrdis-blind", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    y = y.float()
    size = tuple(y.shape[-2:])

    gain0, offset0 = initial_gain_offset(y)
    if c.gain_init is not None:
        gain0 = torch.full_like(gain0, float(c.gain_init))
    log_gain = gain0.log().requires_grad_(True)
    offset_grid_map = offset0.expand(-1, y.shape[1], c.offset_grid, c.offset_grid).clone().requires_grad_(True)
    degradation = torch.optim.Adam([{"params": [log_gain], "lr": c.gain_lr},
                                    {"params": [offset_grid_map], "lr": c.offset_lr}], betas=(0.9, 0.99))

    def degrade(x, log_f, grid):
        return operator.with_parameters(x, log_f.exp(), smooth_offset(grid, size))

    def data_loss(x, log_f, grid):
        return 0.5 * squared_misfit(y, lambda image: degrade(image, log_f, grid), x).sum()

    stretched = operator.with_parameters(y, 1 / gain0, -offset0 / gain0)  # A_{f_0,M_0}^-1(y)
    x_init = (stretched.clamp(-1, 1) if init is None else init).detach().float()
    mu = x_init.clone().requires_grad_(True)
    image_optimizer = torch.optim.Adam([mu], lr=c.lr, betas=(0.9, 0.99))
    timesteps = prior.schedule.timesteps(c.steps, c.t_start, c.t_end)

    eps_prev = None
    for n, t in log.steps(timesteps):
        # 1. the degradation, with the image fixed
        if t < c.estimate_below:
            degradation.zero_grad(set_to_none=True)
            # Fitted to the image as it will be shown, in [-1, 1]: an inflated mu (f too small) is clipped
            # and no longer explains y's highlights, which pulls f back up.
            data_loss(mu.detach().clamp(-1, 1), log_gain, offset_grid_map).backward()
            degradation.step()
        # 2. the image, with the degradation fixed
        f, grid = log_gain.detach(), offset_grid_map.detach()
        eps_h = draw_hybrid_noise(n, eps_prev, mu, source, c.beta, c.fresh_noise_steps)
        eps_prev, record = hrdis_step(mu, image_optimizer, prior, t, eps_h, lambda x: data_loss(x, f, grid),
                                      obs_weight=c.obs_weight, reg_weight=c.reg_weight, min_weight=c.min_weight)
        log.record(n, t, x=mu, estimate=mu, **{k: v for k, v in record.items() if k != "t"},
                   gain=f.exp().flatten().tolist())

    image = mu.detach().clamp(-1, 1)
    with torch.no_grad():
        gain, offset = log_gain.exp(), smooth_offset(offset_grid_map, size)
        residual = (y - operator.with_parameters(image, gain, offset)).flatten(1).pow(2).mean(1).sqrt()
    return log.result(image, x_init, nfe=c.steps, backprop=False, params={**c.as_dict(), "seed": seed},
                      extras={"gain": gain.flatten().tolist(), "offset": offset, "residual": residual.tolist()})
