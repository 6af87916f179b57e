"""``hrdis diversity``: restore one measurement with several seeds; per-pixel std and pairwise RMSE."""

from __future__ import annotations

from pathlib import Path

from .. import images
from ..solvers import METHODS
from .options import add_method_args, add_prior_args, load_prior_arg, method_params


def add_parser(sub) -> None:
    d = sub.add_parser("diversity", help="restore one measurement with several seeds: per-pixel std and pairwise RMSE")
    d.add_argument("--input", required=True, help="a clean image; the measurement is simulated from it")
    d.add_argument("--task", required=True)
    d.add_argument("--method", default="hrdis", choices=list(METHODS))
    d.add_argument("--seeds", type=int, default=8, help="number of solver seeds (0..SEEDS-1)")
    d.add_argument("--noise", default="none")
    d.add_argument("--steps", type=int)
    d.add_argument("--beta", type=float)
    d.add_argument("--resize", action="store_true", help="square-crop and resize the input to the prior's size")
    d.add_argument("--out", required=True, help="folder for std.png, samples.png, diversity.json (created if missing)")
    add_method_args(d)
    add_prior_args(d)


def run(args) -> None:
    from ..experiments.diversity import run_diversity

    images.check_output_path(Path(args.out) / "diversity.json", "--out")
    prior = load_prior_arg(args)
    truth = images.read_image(args.input, size=prior.image_size, crop=args.resize)
    params = {**{k: v for k, v in (("steps", args.steps), ("beta", args.beta)) if v is not None}, **method_params(args)}
    summary = run_diversity(prior, truth, args.task, args.out, seeds=args.seeds, method=args.method,
                            noise=args.noise, **params)
    print(f"{args.method} on {args.task}, {args.seeds} seeds: mean pairwise RMSE {summary['mean_pairwise_rmse']:.4f}, "
          f"mean per-pixel std {summary['mean_pixel_std']:.4f} ([0, 1] scale)")
    print(f"wrote {args.out}/std.png, samples.png, diversity.json")
