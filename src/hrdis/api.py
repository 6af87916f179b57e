"""The Python entry point: ``solve(y, operator, prior, method=..., task=...)``.

Parameters resolve in this order, later winning: what the method takes from the task (for the HRDIS
family, Table 5 adjusted for noise), the method's defining parameters (e.g. RED-diff's beta = 1), then
the caller's keyword arguments.
"""

from __future__ import annotations

import torch

from .noise import NoNoise, Noise, parse_noise
from .operators import Operator
from .priors import Prior
from .solvers import SolveResult, get_method
from .tasks import Task, get_task


def resolve_params(method: str, task: str | Task | None = None, noise: Noise | str | None = None, **overrides) -> dict:
    """The full parameter set a solve will use (handy to print or log)."""
    m = get_method(method)
    preset = {}
    if task is not None:
        task = get_task(task) if isinstance(task, str) else task
        preset = m.task_params(task, noise if isinstance(noise, Noise) else parse_noise(noise))
    return {**preset, **m.overrides, **{k: v for k, v in overrides.items() if v is not None}}


def solve(y: torch.Tensor, operator: Operator, prior: Prior, method: str = "hrdis", *,
          task: str | Task | None = None, noise: Noise | str | None = None, seed: int = 0,
          reference: torch.Tensor | None = None, progress: bool = False, **params) -> SolveResult:
    """Restore the image behind measurement ``y`` of ``operator`` with ``prior``.

    ``task`` selects a preset (e.g. "inpaint-box"); ``noise`` (e.g. "gaussian:0.05") switches to the
    noisy preset; any solver parameter (``steps``, ``beta``, ``lr``, ``obs_weight``, ...) can be given.
    ``reference`` only adds a per-step PSNR to the history. Returns a ``SolveResult``.
    """
    m = get_method(method)
    kwargs = resolve_params(method, task, noise if noise is not None else NoNoise(), **params)
    result = m.solver(y, operator, prior, seed=seed, reference=reference, progress=progress, **kwargs)
    result.method = method
    return result
