"""``hrdis info``: the tasks with their presets, the methods with their official variants, the prior."""

from __future__ import annotations

from ..solvers import METHODS
from ..tasks import TASKS
from .options import add_prior_args, load_prior_arg


def add_parser(sub) -> None:
    i = sub.add_parser("info", help="list tasks, methods and the prior in use")
    add_prior_args(i)


def _format_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())

def run(args) -> None:
    print("tasks:")
    for t in TASKS.values():
        tuned = "".join(f"; at {size} px: {_format_params(o.params)}"
                        + (f", noisy_obs_factors={o.noisy_obs_factors}" if o.noisy_obs_factors else "")
                        for size, o in t.tuned.items())
        print(f"  {t.name:16s} {t.description}  [{_format_params(t.preset)}{tuned}]")
    print("methods (--variant official: as the HRDIS paper's code runs them; --variant authors: as their "
          "authors' code does):")
    for m in METHODS.values():
        print(f"  {m.name:16s} {m.description}")
        if m.config.OFFICIAL:
            print(f"  {'':16s} official: {_format_params(m.config.OFFICIAL)} ({m.config.OFFICIAL_SOURCE})")
        if m.config.AUTHORS:
            print(f"  {'':16s} authors: {_format_params(m.config.AUTHORS)} ({m.config.AUTHORS_SOURCE})")
    print("noise: none, gaussian:SIGMA, poisson:LEVEL, speckle:SIGMA")
    prior = load_prior_arg(args)
    print(f"prior: {prior.describe()}")
    meta = getattr(prior, "meta", {})
    if meta:
        print("  " + ", ".join(f"{k}={v}" for k, v in meta.items()))
