"""hrdis: image restoration with diffusion priors (HRDIS, ICLR 2025, and its peers).

    import hrdis
    prior = hrdis.load_prior()                       # the bundled 64x64 face prior
    op = hrdis.operators.AveragePoolSR(4)
    result = hrdis.solve(op(x), op, prior, task="sr4")
    result.image                                     # (1, 3, 64, 64) in [-1, 1]
"""

from . import masks, metrics, noise, operators, tasks
from .api import resolve_config, resolve_params, solve
from .priors import GaussianPrior, Prior, UNetPrior, load_prior
from .schedule import VPSchedule
from .solvers import METHODS, SolveResult
from .tasks import TASKS

__version__ = "0.1.0"

__all__ = ["GaussianPrior", "METHODS", "Prior", "SolveResult", "TASKS", "UNetPrior", "VPSchedule", "load_prior",
           "masks", "metrics", "noise", "operators", "resolve_config", "resolve_params", "solve", "tasks"]
