"""The Python entry point: ``solve(y, operator, prior, method=..., task=...)``.

Parameters resolve in this order, later winning: the method's config defaults (``solvers.config``, e.g.
RED-diff's beta = 1), what the method takes from the task (for the HRDIS family, Table 5 with the task's
overrides for the prior's image size, adjusted for noise), the official variant's settings when
``variant="official"`` (the authors' variant's when ``variant="authors"``), then the caller's keyword
arguments. A parameter the method does not take is an error.

``restarts`` (the task's, e.g. 4 for phase retrieval, else 1) runs the solver with seeds
seed, seed + 1000, seed + 2000, ... (``RESTART_SEED_STRIDE``) and keeps, per image, the run with the
smallest measurement residual ||y - A(x)|| / sqrt(m); for a single image the restarts run as one batch
(same results, less time). Where the operator cannot tell the result from other images
(``Operator.equivalents``: phase retrieval's negative and 180-degree rotation), the prior chooses among
them by its denoising error (``choose_twin``). The ground truth is never consulted: ``reference``
only feeds per-step PSNR histories. A solver that estimates its own operator (``hrdis-blind``) reports the
residual under its estimate in ``extras["residual"]``, and that is used instead of A's.

Seeds are per image: ``seed`` s for a batch of B gives image b the seed s + b (or pass one seed per image
as a list), so a batch restores exactly as B single solves; restart k adds k * 1000 to every image's
seed, so restarts and images never share a seed in batches of up to 1000 images.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from .noise import NoNoise, Noise, parse_noise
from .operators import Operator
from .priors import Prior, denoising_error
from .solvers import SolveResult, SolverConfig, get_method
from .solvers.base import check_positive_int
from .tasks import Task, get_task

# choose_twin's score: the prior's denoising error at t = 0.1 T ... 0.6 T, 2 noise draws each. With the
# bundled prior it ranked the truth above its negative and its rotations on every one of 16 evaluation
# and 32 tuning faces (scripts/twin_check.py).
TWIN_FRACTIONS, TWIN_DRAWS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6), 2
RESTART_SEED_STRIDE = 1000  # restart k runs at seed + 1000 k (image b of it at seed + 1000 k + b)


def resolve_config(method: str, task: str | Task | None = None, noise: Noise | str | None = None, *,
                   image_size: int | None = None, variant: str = "default", **overrides) -> SolverConfig:
    """The config a solve will use; ``image_size`` (the prior's) selects the task's overrides for that
    size (``Task.preset_for``). Overrides of None are ignored (so CLI flags left unset keep the preset)."""
    m = get_method(method)
    preset = {}
    if task is not None:
        task = get_task(task) if isinstance(task, str) else task
        preset = m.task_params(task, noise if isinstance(noise, Noise) else parse_noise(noise), image_size)
    return m.build_config({k: v for k, v in overrides.items() if v is not None}, variant, preset)


def resolve_params(method: str, task: str | Task | None = None, noise: Noise | str | None = None, *,
                   image_size: int | None = None, variant: str = "default", **overrides) -> dict:
    """``resolve_config`` as a plain dict (to print or log)."""
    return resolve_config(method, task, noise, image_size=image_size, variant=variant, **overrides).as_dict()


def solve(y: torch.Tensor, operator: Operator, prior: Prior, method: str = "hrdis", *,
          task: str | Task | None = None, noise: Noise | str | None = None, seed: int | list[int] = 0,
          restarts: int | None = None, variant: str = "default", reference: torch.Tensor | None = None,
          progress: bool = False, choose_twins: bool = True, batch_restarts: bool = True, **params) -> SolveResult:
    """Restore the image behind measurement ``y`` of ``operator`` with ``prior``.

    ``task`` selects a preset (e.g. "inpaint-box"); ``noise`` (e.g. "gaussian:0.05") switches to the
    noisy preset; any parameter of the method's config (``steps``, ``beta``, ``lr``, ``obs_weight``, ...) can
    be given. ``variant="official"`` runs the method as its official code does (``SolverConfig.OFFICIAL``),
    ``variant="authors"`` as its own authors' code does (``SolverConfig.AUTHORS``).
    ``restarts`` (default: the task's, else 1) keeps the best of that many seeds by measurement
    residual; ``extras`` then records every run's residual. ``reference`` only adds a per-step PSNR to
    the history. ``choose_twins`` (default on) keeps, among the images the operator cannot tell from
    the result, the one the prior finds most plausible (``choose_twin``). ``batch_restarts`` (default
    on) runs the restarts of a single image as one batch, which restores each as its own run would
    (see the module docstring) in less time, for restarts times the memory. Returns a ``SolveResult``.
    """
    m = get_method(method)
    m.check_operator(operator)
    task = get_task(task) if isinstance(task, str) else task
    config = resolve_config(method, task, noise if noise is not None else NoNoise(),
                            image_size=getattr(prior, "image_size", None), variant=variant, **params)
    restarts = restarts if restarts is not None else (task.restarts if task is not None else 1)
    check_positive_int("restarts", restarts)
    seeds = [seed + RESTART_SEED_STRIDE * k if isinstance(seed, int) else [s + RESTART_SEED_STRIDE * k for s in seed]
             for k in range(restarts)]
    kwargs = {"config": config}
    if batch_restarts and restarts > 1 and y.shape[0] == 1:
        runs = _batched_restarts(m.solver, y, operator, prior, seeds, reference, progress, kwargs)
    else:
        runs = [m.solver(y, operator, prior, seed=s, reference=reference, progress=progress, **kwargs) for s in seeds]
    result = runs[0] if restarts == 1 else keep_best_restart(runs, seeds, y, operator)
    if choose_twins:
        result = choose_twin(result, operator, prior)
    result.method = method
    result.params = {**result.params, "variant": variant}
    return result


def _batched_restarts(solver, y, operator, prior, seeds, reference, progress, kwargs) -> list[SolveResult]:
    """The restarts of one image (``y`` of batch 1) as a single batched solve, split back into one
    ``SolveResult`` per restart. A batch gives image b its own seed (here seeds[b]), so each part is
    the run that seed would give alone. The parts share the batch's history, time and NFE per image."""
    n = len(seeds)
    batch = solver(torch.cat([y] * n), operator, prior, seed=[s if isinstance(s, int) else s[0] for s in seeds],
                   reference=None if reference is None else torch.cat([reference] * n), progress=progress, **kwargs)
    return [dataclasses.replace(batch, image=batch.image[k:k + 1], init=batch.init[k:k + 1], seconds=batch.seconds / n,
                                extras={key: _part(v, k, n) for key, v in batch.extras.items()})
            for k in range(n)]


def _part(value, k: int, n: int):
    """Restart k's share of a per-image extra of a batch of n restarts (other values are shared)."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[k:k + 1]
    if isinstance(value, list) and len(value) == n:
        return [value[k]]
    return value


def choose_twin(result: SolveResult, operator: Operator, prior: Prior) -> SolveResult:
    """Per image, the candidate of ``operator.equivalents(result.image)`` with the smallest prior
    denoising error (``priors.denoising_error``; 12 network evaluations per candidate: 2 draws at 6
    timesteps). The measurement cannot choose (all candidates have the same one), and nothing in the
    solvers keeps them off a face's negative: both HRDIS and RED-diff ended on one for one of the 16
    evaluation faces. Records the chosen candidate's index (0 = the solver's own result) and every
    candidate's error in ``extras``."""
    candidates = operator.equivalents(result.image)
    if len(candidates) == 1:
        return result
    start = time.perf_counter()
    errors = torch.stack([denoising_error(prior, c, fractions=TWIN_FRACTIONS, draws=TWIN_DRAWS) for c in candidates])
    chosen = errors.argmin(0).tolist()  # errors: (candidates, B)
    result.image = torch.stack([candidates[k][b] for b, k in enumerate(chosen)])
    result.nfe += len(candidates) * len(TWIN_FRACTIONS) * TWIN_DRAWS
    result.seconds += time.perf_counter() - start
    result.extras = {**result.extras, "twin": chosen, "twin_errors": errors.T.tolist()}
    return result


def measurement_residual(result: SolveResult, y: torch.Tensor, operator: Operator) -> torch.Tensor:
    """Per-image RMS of y - A(x): the solver's own ``extras["residual"]`` if it has one, else A's."""
    if "residual" in result.extras:
        return torch.as_tensor(result.extras["residual"], dtype=torch.float64).flatten()
    with torch.no_grad():
        return (y - operator(result.image)).flatten(1).double().pow(2).mean(1).sqrt().cpu()


def keep_best_restart(runs: list[SolveResult], seeds: list[int], y: torch.Tensor, operator: Operator) -> SolveResult:
    """Per image, the run with the smallest measurement residual; the others' residuals go to extras."""
    residuals = torch.stack([measurement_residual(r, y, operator) for r in runs])  # (restarts, B)
    chosen = residuals.argmin(0).tolist()
    best = runs[chosen[0]]  # supplies the history (one per run, not per image)
    return SolveResult(
        image=_per_image([r.image for r in runs], chosen), init=_per_image([r.init for r in runs], chosen),
        history=best.history, nfe=sum(r.nfe for r in runs), backprop=best.backprop,
        params={**best.params, "seed": seeds[0], "restarts": len(runs)}, seconds=sum(r.seconds for r in runs),
        extras={**{k: _per_image([r.extras.get(k) for r in runs], chosen) for k in best.extras},
                "restart_seeds": seeds, "chosen_restart": chosen, "chosen_seed": [seeds[k] for k in chosen],
                "restart_residuals": residuals.T.tolist()})  # [image][restart]


def _per_image(values: list, chosen: list[int]):
    """Image b's entry of run chosen[b], for batched tensors and per-image lists (else run chosen[0]'s)."""
    batch, first = len(chosen), values[chosen[0]]
    if isinstance(first, torch.Tensor) and first.dim() > 0 and first.shape[0] == batch:
        return torch.stack([values[k][b] for b, k in enumerate(chosen)])
    if isinstance(first, list) and len(first) == batch:
        return [values[k][b] for b, k in enumerate(chosen)]
    return first
