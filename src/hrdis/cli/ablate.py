"""``hrdis ablate``: sweep one solver parameter over values (bench cells, resumable), tables and plots."""

from __future__ import annotations

from pathlib import Path

from ..experiments.ablate import PARAMS as ABLATION_PARAMS
from ..experiments.sharding import dist_close, dist_done, dist_env
from .options import add_method_args, add_prior_args, load_prior_arg, method_params, report_failures, steps_override


def add_parser(sub) -> None:
    a = sub.add_parser("ablate", help="sweep one solver parameter over values (bench cells, resumable)", description=(
        "Rows in OUT/rows.jsonl (one per finished cell, key includes PARAM=VALUE); tables ablation_METRIC.md "
        "(values as rows, tasks as columns) and one plot per task, ablation_TASK.png. t_spacing is the paper's "
        "epsilon: consecutive timesteps epsilon*T apart, grid ending at t=0, N steps (fewer if they do not fit "
        "below T)."))
    a.add_argument("--param", required=True, choices=ABLATION_PARAMS)
    a.add_argument("--values", required=True, help="comma-separated values, e.g. 0,0.1,0.2,0.5,1")
    a.add_argument("--tasks", required=True, help="comma-separated tasks (task@noise allowed)")
    a.add_argument("--method", default="hrdis", help="the method whose parameter is swept (default hrdis)")
    a.add_argument("--images", required=True, help="a folder or .tar of clean images")
    a.add_argument("--first", type=int, help="first file number to use")
    a.add_argument("--n", "--num-images", dest="n", type=int, default=20, help="number of images")
    a.add_argument("--noise", default="none")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--steps", type=int, help="base steps for every cell (not with --param steps)")
    a.add_argument("--lr", type=float, help="base learning rate for every cell (not with --param lr)")
    a.add_argument("--figures", type=int, default=0, help="images whose results are kept as PNGs")
    a.add_argument("--no-plots", action="store_true", help="skip the PNG plots (they need matplotlib)")
    a.add_argument("--out", required=True, help="output folder")
    add_method_args(a)
    add_prior_args(a)


def run(args) -> int:
    from ..experiments import ablate, bench

    values = [ablate.parse_value(args.param, v) for v in args.values.split(",") if v.strip()]
    for name in ("steps", "lr"):
        if args.param == name and getattr(args, name) is not None:
            raise ValueError(f"--{name} is the swept parameter here; drop one of them")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if not args.no_plots:
        try:
            ablate.load_pyplot()  # fail before the run, not after it
        except ImportError as exc:
            raise ValueError(str(exc)) from None
    rank, world = dist_env()
    try:
        prior = load_prior_arg(args)
        tasks = [t for t in args.tasks.split(",") if t]
        bench_images = bench.load_bench_images(args.images, prior.image_size, args.n, args.first)
        params = {**(steps_override(args.steps) or {}), **method_params(args)}
        if args.lr is not None:
            params["lr"] = args.lr
        ablate.run_ablation(prior, args.param, values, tasks, bench_images, args.out, method=args.method,
                            noise=args.noise, seed=args.seed, params=params, figures=args.figures,
                            rank=rank, world=world)
        dist_done(world)
        if rank != 0:
            return 0
        bench.merge_rank_rows(args.out)
        rows = [r for r in bench.all_rows(args.out) if r.get("param") == args.param and r["method"] == args.method]
        written = ablate.write_ablation(rows, args.out, args.param, values, tasks, plots=not args.no_plots,
                                         noise=args.noise)
        print((Path(args.out) / "ablation_psnr.md").read_text())
        print(f"{len(rows)} rows in {args.out}; wrote {', '.join(p.name for p in written)}")
        labels = [c.label for c in bench.parse_columns(tasks, args.noise)]
        return report_failures(bench.failed_cells(rows, values, labels, row_of=ablate.value_of), args.out)
    finally:
        dist_close(world)
