"""Solvers: functions ``(y, operator, prior, *, seed, reference, progress, **params) -> SolveResult``
that know nothing of files.

``METHODS`` names each solver, the parameters that make it what it is (``overrides``), and what it
takes from a task (``task_params``): the HRDIS family takes the task's Table 5 preset (adjusted for
noise, App. C.2); other methods take their own per-task settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .base import SolveResult
from .blind import hrdis_blind
from .classical import bicubic, tv
from .hrdis import hrdis, hybrid_noise

if TYPE_CHECKING:
    from ..noise import Noise
    from ..tasks import Task


def _hrdis_task_params(task: "Task", noise: "Noise") -> dict:
    from ..tasks import noisy_preset

    return noisy_preset(task.preset, noise)


def _no_task_params(task: "Task", noise: "Noise") -> dict:
    return {}


@dataclass(frozen=True)
class Method:
    name: str
    solver: Callable[..., SolveResult]
    description: str
    overrides: dict = field(default_factory=dict)  # applied on top of the task's parameters
    task_params: Callable[["Task", "Noise"], dict] = _no_task_params


METHODS: dict[str, Method] = {
    "hrdis": Method("hrdis", hrdis, "HRDIS: hybrid noise, beta = 0.2 (Dou et al., ICLR 2025)", {"beta": 0.2},
                    _hrdis_task_params),
    "reddiff": Method("reddiff", hrdis,
                      "RED-diff / denoising regularisation: fresh noise every step (beta = 1), 1000 steps as the "
                      "HRDIS paper ran it (Mardani et al., ICLR 2024)", {"beta": 1.0, "steps": 1000},
                      _hrdis_task_params),
    "cr": Method("cr", hrdis, "consistency regularisation: the previous prediction as noise (beta = 0)",
                 {"beta": 0.0}, _hrdis_task_params),
    "tv": Method("tv", tv, "prior-free baseline: total-variation regularised least squares (Adam, 300 steps)",
                 {"steps": 300, "lr": 0.02}),
    "bicubic": Method("bicubic", bicubic, "prior-free baseline for super-resolution: bicubic upsampling"),
    "hrdis-blind": Method("hrdis-blind", hrdis_blind,
                          "blind HRDIS for y = f x + M (unknown gain f and smooth offset M, App. C.7): alternates "
                          "Adam on f, M with HRDIS steps on the image", {"beta": 0.2}, _hrdis_task_params),
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "SolveResult", "get_method", "hrdis", "hybrid_noise"]
