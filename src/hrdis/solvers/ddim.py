"""DDIM (Song et al., ICLR 2021) as a "method" that ignores the measurement: what the prior alone gives.

    x0_hat = clip((x_t - sigma_t eps_theta(x_t, t)) / alpha_t, -1, 1)
    x_s    = alpha_s x0_hat + sqrt(sigma_s^2 - b^2) eps_hat + b z,
    b      = eta sqrt((sigma_s^2 / sigma_t^2) (1 - alpha_t^2 / alpha_s^2))

from x_T ~ N(0, I) down to the clean image (``sampling.ddim_step``). A reference point for the
benchmark: a restoration method should beat an unconditional sample from its own prior.

The official variant (``DDIMConfig.OFFICIAL``) is DDIM as the RED-diff / HRDIS code runs it: eta 0.5, x0_hat
not clipped, the strided grid, the float32 schedule and an unclamped result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..operators import Operator
from ..priors import Prior
from ..randomness import Randomness, noise_source, randn
from ..sampling import ddim_step
from .base import SolveResult, check_inputs, check_unit_interval
from ._common import REFERENCE_SAMPLER, SamplerConfig, check_grid, image_shape, next_timestep, sampler_timesteps
from .steplog import StepCallback, StepLog


@dataclass(frozen=True)
class DDIMConfig(SamplerConfig):
    """DDIM's parameters: ``SamplerConfig``'s, ``eta`` (0 deterministic, 1 DDPM-like) and ``clip_x0``."""

    eta: float = 0.0
    clip_x0: bool = True

    OFFICIAL: ClassVar[dict] = dict(REFERENCE_SAMPLER, eta=0.5, clip_x0=False)
    OFFICIAL_SOURCE: ClassVar[str] = "NVlabs/RED-diff algos/ddim.py"

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("eta", self.eta)


def ddim(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DDIMConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Unconditional DDIM samples shaped like the images behind y (y itself is not used; parameters:
    ``DDIMConfig``). ``seed`` (or ``randomness``) gives x_T and the noise; ``reference`` only records the PSNR
    of x0_hat per step."""
    c = config or DDIMConfig()
    check_inputs(y, operator, prior, c.steps)
    check_grid(c.steps, prior.schedule)
    schedule = prior.schedule.in_precision(c.schedule_precision)
    timesteps = sampler_timesteps(c, schedule)
    log = StepLog("ddim", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    x = randn(image_shape(y, operator), source, y.device, role="initial")
    x_init = x.clone()

    with torch.no_grad():
        for i, t in log.steps(timesteps):
            x, x0 = ddim_step(prior, x, t, next_timestep(timesteps, i), c.eta, source, clip_x0=c.clip_x0,
                              schedule=schedule)
            log.record(i, t, x=x, estimate=x0)

    return log.result(x.clamp(-1, 1) if c.clamp_result else x, x_init, nfe=len(timesteps), backprop=False,
                      params={**c.as_dict(), "seed": seed})
