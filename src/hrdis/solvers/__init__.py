"""Solvers: functions ``(y, operator, prior, config, *, seed, randomness, reference, progress, callback) ->
SolveResult`` that know nothing of files or tasks.

``METHODS`` names each solver, its config class (``config.SolverConfig``: every parameter and its default,
and the settings of its official variant), and what it takes from a task (``task_params``): the HRDIS
family takes the task's Table 5 preset (adjusted for the image size and for noise, App. C.2); other methods
take their own per-task settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .base import SolveResult
from .blind import BlindConfig, has_gain_and_offset, hrdis_blind
from .classical import BicubicConfig, TVConfig, bicubic, tv
from .config import VARIANTS, SolverConfig
from .daps import DAPS4KConfig, DAPSConfig, DAPSLightConfig, daps, daps_task_params
from .ddim import DDIMConfig, ddim
from .ddnm import DDNMConfig, DDNMPlusConfig, ddnm
from .diffpir import DiffPIRConfig, diffpir, diffpir_task_params
from ._common import sigma_y_task_params
from .ddrm import SVD_OPERATORS_TEXT, DDRMConfig, ddrm, has_svd
from .dmplug import DMPlugConfig, dmplug
from .dps import DPSConfig, dps, dps_task_params
from .drddim import DRDDIMConfig, drddim
from .hrdis import CRConfig, HRDISConfig, REDDiffConfig, hrdis, hybrid_noise
from .pigdm import PiGDMConfig, pigdm

if TYPE_CHECKING:
    from ..noise import Noise
    from ..tasks import Task


def _hrdis_task_params(task: "Task", noise: "Noise", image_size: int | None) -> dict:
    from ..tasks import noisy_preset

    return noisy_preset(task.preset_for(image_size), noise, task.noisy_obs_factors_for(image_size))


def _no_task_params(task: "Task", noise: "Noise", image_size: int | None) -> dict:
    return {}


def _dps_task_params(task: "Task", noise: "Noise", image_size: int | None) -> dict:
    return dps_task_params(task, noise)


def _sigma_y_task_params(task: "Task", noise: "Noise", image_size: int | None) -> dict:
    return sigma_y_task_params(task, noise)


def _daps_task_params(task: "Task", noise: "Noise", image_size: int | None) -> dict:
    return daps_task_params(task, noise)


def _diffpir_task_params(task: "Task", noise: "Noise", image_size: int | None) -> dict:
    return diffpir_task_params(task, noise)


# What each method needs of the operator; `requires` is the phrase used in the error message.
def _any_operator(op) -> bool:
    return True


def _linear(op) -> bool:
    from ..operators import is_linear

    return is_linear(op)


def _super_resolution(op) -> bool:
    from ..operators import is_super_resolution

    return is_super_resolution(op)


@dataclass(frozen=True)
class Method:
    name: str
    solver: Callable[..., SolveResult]
    config: type[SolverConfig]
    description: str
    task_params: Callable[["Task", "Noise", int | None], dict] = _no_task_params
    applies_to: Callable[[object], bool] = _any_operator
    requires: str = ""

    def check_operator(self, operator) -> None:
        if not self.applies_to(operator):
            raise ValueError(f"method {self.name} needs {self.requires}; {operator.name} is not one. "
                             f"Pick another method (see `hrdis info`)")

    def build_config(self, params: dict, variant: str = "default", preset: dict | None = None) -> SolverConfig:
        """This method's config (``SolverConfig.build``), with one-line errors for unknown names and values."""
        try:
            return self.config.build(self.name, params, variant, preset)
        except TypeError as e:  # a value of the wrong kind for a field
            raise ValueError(f"method {self.name}: {e}") from None


METHODS: dict[str, Method] = {
    "hrdis": Method("hrdis", hrdis, HRDISConfig, "HRDIS: hybrid noise, beta = 0.2 (Dou et al., ICLR 2025)",
                    _hrdis_task_params),
    "reddiff": Method("reddiff", hrdis, REDDiffConfig,
                      "RED-diff / denoising regularisation: fresh noise every step (beta = 1), 1000 steps as the "
                      "HRDIS paper ran it (Mardani et al., ICLR 2024)", _hrdis_task_params),
    "cr": Method("cr", hrdis, CRConfig, "consistency regularisation: the previous prediction as noise (beta = 0)",
                 _hrdis_task_params),
    "tv": Method("tv", tv, TVConfig, "prior-free baseline: total-variation regularised least squares (Adam, 300 steps)"),
    "bicubic": Method("bicubic", bicubic, BicubicConfig, "prior-free baseline for super-resolution: bicubic upsampling",
                      applies_to=_super_resolution, requires="a super-resolution operator"),
    "hrdis-blind": Method("hrdis-blind", hrdis_blind, BlindConfig,
                          "blind HRDIS for y = f x + M (unknown gain f and smooth offset M, App. C.7): alternates "
                          "Adam on f, M with HRDIS steps on the image", _hrdis_task_params,
                          applies_to=has_gain_and_offset, requires="the blind gain-offset operator, BlindGainOffset (task blind-lowlight)"),
    "dps": Method("dps", dps, DPSConfig, "DPS (Chung et al., ICLR 2023): DDPM sampling with a gradient step on "
                  "||y - A(x0_hat)|| (step size zeta per task); 1000 NFE, backprop through the network; linear or "
                  "nonlinear A", _dps_task_params),
    "dmplug": Method("dmplug", dmplug, DMPlugConfig, "DMPlug (Wang et al., NeurIPS 2024): Adam on the seed of a 3-step "
                     "DDIM so that A(R(z)) fits y, ES-WMV early stopping; 3 NFE + backprop per iteration, up to 300 "
                     "iterations"),
    "ddim": Method("ddim", ddim, DDIMConfig, "reference point: unconditional DDIM samples from the prior (Song et al., "
                   "ICLR 2021), ignores y; 100 NFE, no backprop"),
    "drddim": Method("drddim", drddim, DRDDIMConfig, "DR+DDIM, the HRDIS paper's ablation (App. C.3): denoising "
                     "regularisation whose noise follows DDIM's deterministic/random split (eta = 1); 1 NFE per step, "
                     "no backprop", _hrdis_task_params),
    "pigdm": Method("pigdm", pigdm, PiGDMConfig, "PiGDM (Song et al., ICLR 2023): DDIM with pseudo-inverse guidance, "
                    "linear A (under Gaussian noise, one with an SVD); 100 NFE, backprop through the network",
                    _sigma_y_task_params, applies_to=_linear, requires="a linear operator"),
    "ddrm": Method("ddrm", ddrm, DDRMConfig, "DDRM (Kawar et al., NeurIPS 2022): DDIM in the SVD space of A (eta 0.85, "
                   f"eta_b 1), {SVD_OPERATORS_TEXT}; 100 NFE, no backprop", _sigma_y_task_params,
                   applies_to=has_svd, requires=f"an operator with an SVD ({SVD_OPERATORS_TEXT})"),
    "daps": Method("daps", daps, DAPSConfig, "DAPS-1K (Zhang et al., CVPR 2025): decoupled annealing, per level a "
                   "probability-flow ODE estimate of x0 then Langevin steps on the data term (no network calls) and "
                   "fresh noise; 250 levels x 4 ODE steps = 1000 NFE, no backprop; linear or nonlinear A",
                   _daps_task_params),
    "daps-4k": Method("daps-4k", daps, DAPS4KConfig, "DAPS-4K: DAPS with 400 levels x 10 ODE steps = 4000 NFE, no "
                      "backprop; linear or nonlinear A", _daps_task_params),
    "daps-light": Method("daps-light", daps, DAPSLightConfig, "DAPS on a CPU budget: 50 levels x 2 ODE steps = "
                         "100 NFE, no backprop; linear or nonlinear A", _daps_task_params),
    "diffpir": Method("diffpir", diffpir, DiffPIRConfig, "DiffPIR (Zhu et al., CVPRW 2023): plug-and-play, the "
                      "prior's x0 then a closed-form proximal step on ||y - A x||^2 in A's SVD, re-noised with a "
                      f"zeta mix of fresh noise; {SVD_OPERATORS_TEXT}; 20 NFE (inpainting) or 100, no backprop",
                      _diffpir_task_params, applies_to=has_svd,
                      requires=f"an operator with an SVD ({SVD_OPERATORS_TEXT})"),
    "ddnm": Method("ddnm", ddnm, DDNMConfig, "DDNM (Wang et al., ICLR 2023): DDIM whose x0 estimate is made "
                   "consistent with y, A^+ y + (I - A^+ A) x0; noiseless linear A; 100 NFE, no backprop",
                   applies_to=_linear, requires="a linear operator"),
    "ddnm-plus": Method("ddnm-plus", ddnm, DDNMPlusConfig, "DDNM+: DDNM with the range-space correction scaled "
                        "under Gaussian noise (per singular value) and optional time travel; linear A; 100 NFE "
                        "without travel, no backprop", _sigma_y_task_params, applies_to=_linear,
                        requires="a linear operator"),
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


__all__ = ["METHODS", "VARIANTS", "Method", "SolveResult", "SolverConfig", "get_method", "hrdis", "hybrid_noise"]
