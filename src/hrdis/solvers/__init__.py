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
from .ddim import ddim
from ._common import sigma_y_task_params
from .ddrm import SVD_OPERATORS_TEXT, ddrm, has_svd
from .dmplug import dmplug
from .dps import dps, dps_task_params
from .drddim import drddim
from .hrdis import hrdis, hybrid_noise
from .pigdm import pigdm

if TYPE_CHECKING:
    from ..noise import Noise
    from ..tasks import Task


def _hrdis_task_params(task: "Task", noise: "Noise") -> dict:
    from ..tasks import noisy_preset

    return noisy_preset(task.preset, noise)


def _no_task_params(task: "Task", noise: "Noise") -> dict:
    return {}


# What each method needs of the operator; `requires` is the phrase used in the error message.
def _any_operator(op) -> bool:
    return True


def _linear(op) -> bool:
    from ..operators import is_linear

    return is_linear(op)


def _super_resolution(op) -> bool:
    from ..operators import AveragePoolSR, BicubicSR

    return isinstance(op, (AveragePoolSR, BicubicSR))


def _gain_offset(op) -> bool:
    from ..nonlinear import BlindGainOffset

    return isinstance(op, BlindGainOffset)


@dataclass(frozen=True)
class Method:
    name: str
    solver: Callable[..., SolveResult]
    description: str
    overrides: dict = field(default_factory=dict)  # applied on top of the task's parameters
    task_params: Callable[["Task", "Noise"], dict] = _no_task_params
    applies_to: Callable[[object], bool] = _any_operator
    requires: str = ""

    def check_operator(self, operator) -> None:
        if not self.applies_to(operator):
            raise ValueError(f"method {self.name} needs {self.requires}; {operator.name} is not one. "
                             f"Pick another method (see `hrdis info`)")


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
    "bicubic": Method("bicubic", bicubic, "prior-free baseline for super-resolution: bicubic upsampling",
                      applies_to=_super_resolution, requires="a super-resolution operator"),
    "hrdis-blind": Method("hrdis-blind", hrdis_blind,
                          "blind HRDIS for y = f x + M (unknown gain f and smooth offset M, App. C.7): alternates "
                          "Adam on f, M with HRDIS steps on the image", {"beta": 0.2}, _hrdis_task_params,
                          applies_to=_gain_offset, requires="the blind gain-offset operator, BlindGainOffset (task blind-lowlight)"),
    "dps": Method("dps", dps, "DPS (Chung et al., ICLR 2023): DDPM sampling with a gradient step on ||y - A(x0_hat)|| "
                  "(step size zeta per task); 1000 NFE, backprop through the network; linear or nonlinear A",
                  {}, dps_task_params),
    "dmplug": Method("dmplug", dmplug, "DMPlug (Wang et al., NeurIPS 2024): Adam on the seed of a 3-step DDIM so that "
                     "A(R(z)) fits y, ES-WMV early stopping; 3 NFE + backprop per iteration, up to 300 iterations"),
    "ddim": Method("ddim", ddim, "reference point: unconditional DDIM samples from the prior (Song et al., ICLR 2021), "
                   "ignores y; 100 NFE, no backprop"),
    "drddim": Method("drddim", drddim, "DR+DDIM, the HRDIS paper's ablation (App. C.3): denoising regularisation whose "
                     "noise follows DDIM's deterministic/random split (eta = 1); 1 NFE per step, no backprop",
                     {}, _hrdis_task_params),
    "pigdm": Method("pigdm", pigdm, "PiGDM (Song et al., ICLR 2023): DDIM with pseudo-inverse guidance, linear A "
                    "(under Gaussian noise, one with an SVD); 100 NFE, backprop through the network", {},
                    sigma_y_task_params, applies_to=_linear, requires="a linear operator"),
    "ddrm": Method("ddrm", ddrm, "DDRM (Kawar et al., NeurIPS 2022): DDIM in the SVD space of A (eta 0.85, eta_b 1), "
                   f"{SVD_OPERATORS_TEXT}; 100 NFE, no backprop", {}, sigma_y_task_params,
                   applies_to=has_svd, requires=f"an operator with an SVD ({SVD_OPERATORS_TEXT})"),
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "SolveResult", "get_method", "hrdis", "hybrid_noise"]
