"""Options the subcommands share, declared once: the method's variant and parameters, the prior, and the
handling of a benchmark's steps override and failed cells."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..priors import load_prior
from ..runtime import add_runtime_args, compile_prior, prior_options
from ..solvers import VARIANTS


def add_method_args(p: argparse.ArgumentParser) -> None:
    """--variant and --set: which form of the method runs, and any parameter of its config."""
    p.add_argument("--variant", choices=VARIANTS, default="default",
                   help="'official': run each method as the HRDIS paper's code does; 'authors': as the method's own "
                   "authors' code does (DPS, DMPlug, DAPS); each difference is a parameter of its config, see "
                   "`hrdis info`; default: as its paper describes it")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="any parameter of the method's config, e.g. --set timestep_grid=strided (repeatable; "
                   "VALUE is read as JSON when it parses, else as text)")

def settings(args) -> dict:
    """--set NAME=VALUE pairs as solver parameters."""
    out = {}
    for item in getattr(args, "settings", []):
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set takes NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[name.strip()] = text
    return out

def method_params(args) -> dict:
    """--set and --variant as parameters of ``solve`` (bench and ablate pass them on to every cell)."""
    params = settings(args)
    if args.variant != "default":
        params["variant"] = args.variant
    return params

def add_prior_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior", default="bundled", help="'bundled' (default), a prior folder, or a guided-diffusion .pt")
    p.add_argument("--prior-config", help="a .pt checkpoint's guided-diffusion options: a JSON file or a preset "
                   "(ffhq_10m, 256x256_diffusion_uncond); default: the preset its file name matches, else "
                   "inferred from its keys and shapes")
    p.add_argument("--bf16", action="store_true", help="alias of --precision bf16")
    add_runtime_args(p)

def load_prior_arg(args):
    prior = load_prior(args.prior, config=args.prior_config, **prior_options(args))
    return compile_prior(prior) if getattr(args, "compile", False) else prior

def steps_override(steps: int | None) -> dict | None:
    """``--steps`` as solver parameters, checked before the run (inside it every cell would fail alike)."""
    if steps is None:
        return None
    if steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps}")
    return {"steps": steps}

def report_failures(failed: list[dict], out) -> int:
    """Exit status 1 with a one-line summary when cells failed (after every other cell and the tables)."""
    if not failed:
        return 0
    print(f"hrdis: {len(failed)} cell{'s' if len(failed) > 1 else ''} failed; see the \"error\" rows in "
          f"{Path(out) / 'rows.jsonl'} and \"Failed cells\" in the tables; re-run the same command to retry them",
          file=sys.stderr)
    return 1
