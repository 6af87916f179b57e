"""``hrdis sample``: unconditional DDIM samples from the prior, as a labelled grid."""

from __future__ import annotations

import math

from .. import images
from .options import add_prior_args, load_prior_arg


def add_parser(sub) -> None:
    sm = sub.add_parser("sample", help="draw unconditional samples from the prior (DDIM)")
    sm.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sm.add_argument("--steps", type=int, default=50, help="DDIM steps per sample (default 50)")
    sm.add_argument("--eta", type=float, default=0.0,
                    help="DDIM's eta: 0 (default) is deterministic, 1 is DDPM-like sampling")
    sm.add_argument("--seed", type=int, default=0, help="seeds the starting noise (default 0)")
    sm.add_argument("--out", required=True, help="PNG grid to write, each sample enlarged to at least 256 px "
                    "(missing folders are created)")
    add_prior_args(sm)


def run(args) -> None:
    from ..sampling import ddim_sample

    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    if args.steps <= 0:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    images.check_output_path(args.out)
    prior = load_prior_arg(args)
    x = ddim_sample(prior, args.n, steps=args.steps, eta=args.eta, seed=args.seed, progress=True)
    ncol = int(math.ceil(args.n**0.5))
    panels = [(x[i:i + 1], f"sample {i + 1}") for i in range(args.n)]
    images.write_image(images.labelled_grid(panels, ncol=ncol), args.out)
    print(f"wrote {args.out} ({args.n} samples, {args.steps} DDIM steps, eta {args.eta}, seed {args.seed})")
