"""DMPlug (Wang et al., NeurIPS 2024): the whole reverse process as a function.

A short deterministic DDIM (eta = 0) reverse process R maps a seed z to an image, and DMPlug
optimises the seed so that the image explains the measurement:

    z* = argmin_z ||y - A(R(z))||^2,   x* = R(z*),

with Adam (lr 0.01) from z ~ N(0, I), backpropagating through every network call of R (3 steps:
3 network evaluations and their backward pass per iteration). The official code clamps R(z) to
[-1, 1] and runs DDIM on the grid t = (k - 1) T/k, ..., T/k, 0 with k steps (666, 333, 0 for k = 3),
clipping x0_hat at each step; so does this.

Early stopping, ES-WMV (Wang et al., "Early stopping for deep image prior", TMLR 2023, as used by
DMPlug): with a window of the W latest iterates x^(k-W+1), ..., x^(k), the windowed variance

    VAR_k = mean over pixels of (1/W) sum_w ||x^(k-w) - mean of the window||^2

is checked at every iteration; once VAR has gone P checks (patience) without a new minimum, stop and
return the iterate x^(k*) at which the minimum was reached. Each image of a batch stops on its own
variance; the loop ends when every image has stopped (or after ``steps`` iterations: then images that
never stopped return their last iterate).

Differences from the DMPlug authors' code (sun-umn/DMPlug, ``sr_inp_nonlinear.py`` ``dmplug()``), each a
field that the authors' variant (``DMPlugConfig.AUTHORS``, ``variant="authors"``) sets:
- ES-WMV does not exist there: the code runs a fixed 5,000 iterations (``early_stopping=False``,
  ``steps=5000``) and keeps the iterate with the best PSNR against the ground truth, an oracle a real
  restoration cannot run (``oracle_result``: the result is then that iterate; it needs ``reference``);
- its loss is one mean over the whole batch (``loss_reduction="batch_mean"``; here one mean per image,
  summed, so images of a batch do not interact; the same for one image);
- its scheduler is diffusers' DDIM, alpha_bar accumulated in float32 from float32 betas
  (``schedule_precision="float32-diffusers"``).
Measured on the DMPlug fixtures (``scripts/parity.py ../shared/fixtures/parity-dmplug``): docs/RESULTS.md,
"Faithfulness".

``SolveResult.extras``: "es_step" (per image, the iteration whose iterate ``image`` is: the ES-WMV
selection), "stopped_at" (the last iteration run); with a ``reference`` only, the *oracle* a paper's
best-PSNR figures report: "oracle_image" (per image, the iterate of highest PSNR against the
reference, which a real restoration cannot know) and "oracle_step".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..operators import Operator
from ..priors import Prior
from ..sampling import ddim_step
from ..randomness import Randomness, noise_source, randn
from .base import SolveResult, check_inputs, check_positive, check_positive_int, squared_misfit
from .config import SolverConfig, check_choice
from .steplog import StepCallback, StepLog
from ._common import check_grid, image_shape, next_timestep, psnr_per_image


def windowed_variance(window: torch.Tensor) -> torch.Tensor:
    """(W, B, ...) iterates -> (B,): the variance across the window, averaged over pixels."""
    return window.var(dim=0, unbiased=False).flatten(1).mean(1)


class WindowedVarianceStop:
    """ES-WMV per image: feed iterates with ``update``; ``stopped`` turns True for an image once its
    windowed variance (``windowed_variance`` of the last ``window`` iterates, kept as running sums) has
    gone ``patience`` checks without a new minimum. ``best_step`` and ``best`` hold the iterate at that
    minimum (-1 and the first iterate before the first full window); ``stop_step`` is -1 until stopped."""

    def __init__(self, window: int = 100, patience: int = 100):
        for name, v in (("window", window), ("patience", patience)):
            check_positive_int(f"ES-WMV {name}", v)
        self.window, self.patience = window, patience
        self.recent: deque[torch.Tensor] = deque()
        self.total = self.total_sq = None  # running sums over the window, float64: O(1) per update
        self.step = -1
        self.best = self.best_variance = self.best_step = self.waited = self.stopped = self.stop_step = None
        self.variance: torch.Tensor | None = None  # the latest VAR, (B,)

    def update(self, x: torch.Tensor) -> None:
        self.step += 1
        x64 = x.detach().double()
        self.recent.append(x64)
        if self.total is None:
            self.total, self.total_sq = torch.zeros_like(x64), torch.zeros_like(x64)
        self.total += x64
        self.total_sq += x64**2
        if len(self.recent) > self.window:
            oldest = self.recent.popleft()
            self.total -= oldest
            self.total_sq -= oldest**2
        if self.best is None:
            b = x.shape[0]
            self.best = x.detach().clone()
            self.best_variance = torch.full((b,), float("inf"), dtype=torch.float64)
            self.best_step = torch.full((b,), -1, dtype=torch.long)
            self.waited = torch.zeros(b, dtype=torch.long)
            self.stopped = torch.zeros(b, dtype=torch.bool)
            self.stop_step = torch.full((b,), -1, dtype=torch.long)
        if len(self.recent) < self.window:
            return
        mean = self.total / self.window
        self.variance = (self.total_sq / self.window - mean**2).clamp_min(0).flatten(1).mean(1).cpu()
        active = ~self.stopped
        improved = active & (self.variance < self.best_variance)
        self.best_variance = torch.where(improved, self.variance, self.best_variance)
        self.best_step[improved] = self.step
        self.best[improved.to(x.device)] = x.detach()[improved.to(x.device)]
        self.waited = torch.where(improved, 0, self.waited + active.long())
        newly = active & (self.waited >= self.patience)
        self.stop_step[newly] = self.step
        self.stopped |= newly

    @property
    def done(self) -> bool:
        return self.stopped is not None and bool(self.stopped.all())


def es_wmv(iterates: Iterable[torch.Tensor], window: int = 100, patience: int = 100) -> WindowedVarianceStop:
    """Run ES-WMV over a sequence of iterates (each (B, ...)) until every image has stopped or the
    sequence ends; the returned state has ``best_step``, ``stop_step`` (-1: never stopped) and ``best``."""
    stop = WindowedVarianceStop(window, patience)
    for x in iterates:
        stop.update(x)
        if stop.done:
            break
    return stop


def reverse_process(prior: Prior, z: torch.Tensor, timesteps: list[int], schedule=None) -> torch.Tensor:
    """R(z): deterministic DDIM from x_{t_1} = z to the clean image, differentiable in z."""
    x = z
    for i, t in enumerate(timesteps):
        x, _ = ddim_step(prior, x, t, next_timestep(timesteps, i), eta=0.0, schedule=schedule)
    return x.clamp(-1, 1)


def official_grid(steps: int, num_timesteps: int) -> list[int]:
    """DMPlug's DDIM grid (diffusers' "leading" spacing): (k - 1) T/k, ..., T/k, 0."""
    ratio = num_timesteps // steps
    return [k * ratio for k in reversed(range(steps))]


@dataclass(frozen=True)
class DMPlugConfig(SolverConfig):
    """DMPlug's parameters.

    steps: the largest number of Adam iterations (the paper runs thousands; ES-WMV usually stops earlier).
        Each costs ``ddim_steps`` network evaluations and their backward pass.
    ddim_steps: k, the DDIM steps of the reverse process R (3 in the paper).
    lr: Adam's learning rate on z.
    early_stopping: use ES-WMV; if False, run every iteration and return the last iterate.
    window, patience: ES-WMV's W and P (iterations).
    oracle_result: return the iterate of highest PSNR against ``reference`` (the authors' code; an oracle
        that needs the clean image, for reproducing their figures, never a restoration).
    loss_reduction: "per_image" (each image's mean squared misfit, summed over the batch) or "batch_mean"
        (one mean over the whole batch, the authors' ``MSELoss``).
    schedule_precision: "float64", "float32" or "float32-diffusers" (``VPSchedule.in_precision``).
    """

    steps: int = 300
    ddim_steps: int = 3
    lr: float = 0.01
    early_stopping: bool = True
    window: int = 100
    patience: int = 100
    oracle_result: bool = False
    loss_reduction: str = "per_image"
    schedule_precision: str = "float64"

    AUTHORS: ClassVar[dict] = dict(steps=5000, early_stopping=False, oracle_result=True, loss_reduction="batch_mean",
                                   schedule_precision="float32-diffusers")
    AUTHORS_SOURCE: ClassVar[str] = "sun-umn/DMPlug sr_inp_nonlinear.py dmplug() (the DMPlug authors' code)"

    def __post_init__(self):
        for name in ("steps", "ddim_steps", "window", "patience"):
            check_positive_int(name, getattr(self, name))
        check_positive("lr", self.lr)
        check_choice("loss_reduction", self.loss_reduction, ("per_image", "batch_mean"))
        check_choice("schedule_precision", self.schedule_precision, ("float64", "float32", "float32-diffusers"))


def dmplug(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    config: DMPlugConfig | None = None,
    *,
    seed: int | list[int] = 0,
    randomness: Randomness | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> SolveResult:
    """Restore x from y = A(x) + noise by optimising the seed of a DDIM reverse process (DMPlug; parameters:
    ``DMPlugConfig``). ``seed`` (or ``randomness``, role "initial") gives z; ``reference``, the ground truth,
    records per-step PSNR and the oracle in ``extras`` (never used to choose ``image``)."""
    c = config or DMPlugConfig()
    check_inputs(y, operator, prior, c.steps)
    if c.oracle_result and reference is None:
        raise ValueError("DMPlug's oracle_result (the authors' best-PSNR iterate) needs the clean image: pass "
                         "reference=, or set oracle_result=False")
    schedule = prior.schedule.in_precision(c.schedule_precision)
    check_grid(c.ddim_steps, prior.schedule)
    stop = WindowedVarianceStop(c.window, c.patience)
    log = StepLog("dmplug", reference=reference, progress=progress, callback=callback)
    source = noise_source(seed, y.shape[0], randomness)
    z = randn(image_shape(y, operator), source, y.device, role="initial").requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=c.lr)
    timesteps = official_grid(c.ddim_steps, prior.schedule.num_timesteps)

    x_init, oracle, oracle_psnr, oracle_step = None, None, None, None
    for k, _ in log.steps(range(c.steps)):
        x = reverse_process(prior, z, timesteps, schedule)
        misfit = squared_misfit(y, operator, x)  # per image, summed: images do not interact
        optimizer.zero_grad(set_to_none=True)
        (misfit.sum() if c.loss_reduction == "per_image" else misfit.mean()).backward()
        optimizer.step()

        x = x.detach()  # x^(k) = R(z^(k)), the iterate the loss was computed on
        x_init = x.clone() if x_init is None else x_init
        stop.update(x)
        terms = {} if stop.variance is None else {"window_variance": stop.variance.mean().item()}
        log.record(k, None, x=x, estimate=x, loss_obs=misfit.mean().item(), **terms)
        if reference is not None:
            psnr = psnr_per_image(x, reference).cpu()
            if oracle is None:
                oracle, oracle_psnr, oracle_step = x.clone(), psnr, torch.zeros_like(psnr, dtype=torch.long)
            better = psnr > oracle_psnr
            oracle[better.to(x.device)] = x[better.to(x.device)]
            oracle_psnr, oracle_step = torch.where(better, psnr, oracle_psnr), torch.where(better, k, oracle_step)
        if c.early_stopping and stop.done:
            break

    iterations = k + 1
    image, es_step = x, torch.full((x.shape[0],), k, dtype=torch.long)
    if c.early_stopping and stop.stopped is not None:
        image = torch.where(stop.stopped.to(x.device).view(-1, 1, 1, 1), stop.best, x)
        es_step = torch.where(stop.stopped, stop.best_step, es_step)
    extras = {"es_step": es_step.tolist(), "stopped_at": k}
    if reference is not None:
        extras.update(oracle_image=oracle, oracle_step=oracle_step.tolist())
    if c.oracle_result:
        image = oracle

    return log.result(image, x_init, nfe=iterations * c.ddim_steps, backprop=True, params={**c.as_dict(), "seed": seed},
                      extras=extras)
