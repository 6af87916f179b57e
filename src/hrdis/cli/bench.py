"""``hrdis bench``: run (column, method, image) cells, resumably, and render their tables."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import images
from ..experiments.sharding import dist_close, dist_done, dist_env
from ..runtime import prior_device
from .options import add_method_args, add_prior_args, load_prior_arg, method_params, report_failures, steps_override


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="run (task, method, image) cells and render tables", description=(
        "One JSON line per finished cell in OUT/rows.jsonl; a re-run skips finished cells."))
    cols = b.add_mutually_exclusive_group(required=True)
    cols.add_argument("--tasks", help="comma-separated columns: task names, or task@noise (e.g. inpaint-ff20@gaussian:0.1)")
    cols.add_argument("--suite", help="a named column set of the paper's tables: linear (Table 1/9), ffhq (Table 2/10), "
                      "nonlinear (Table 4/11), noisy (inpainting under four noise models)")
    b.add_argument("--methods", required=True, help="comma-separated method names")
    b.add_argument("--images", help="a folder or .tar of clean images (required unless --render-only)")
    b.add_argument("--crop", default="celeba", choices=list(images.CROPS),
                   help="the square face crop taken from each image: celeba (default; the bundled prior's training "
                   "crop), tight (the face fills about 20%% more of the frame, about FFHQ's alignment) or loose "
                   "(about 20%% less, edges extended by reflection); rows record it")
    b.add_argument("--first", type=int, help="first file number to use (CelebA held-out faces: 9901)")
    b.add_argument("--n", "--num-images", dest="n", type=int, default=100,
                   help="number of images (spell it --num-images under torchrun, whose parser claims --n)")
    b.add_argument("--noise", default="none", help="noise of the columns that name none")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--steps", type=int, help="override every method's steps (quick runs)")
    b.add_argument("--figures", type=int, default=4, help="images shown in the figure grids")
    b.add_argument("--out", required=True, help="output folder (created if missing)")
    b.add_argument("--render-only", action="store_true",
                   help="run no cell: only re-render OUT's tables and figures for these methods and columns "
                   "(e.g. after runs that each added some methods)")
    b.add_argument("--lpips-weights", metavar="BACKBONE,LIN",
                   help="also score LPIPS v0.1 (table_lpips.md): the torchvision backbone file "
                   "(alexnet-owt-7be5be79.pth or vgg16-397923af.pth) and the lpips package's linear layers "
                   "(alex.pth or vgg.pth), comma-separated; see docs/benchmarks.md, nothing is downloaded")
    b.add_argument("--fid-weights", metavar="PATH",
                   help="also write table_fid.md (FID per method and column, restorations vs truths) with "
                   "pytorch-fid's Inception weights, pt_inception-2015-12-05-6726825d.pth")
    add_method_args(b)
    add_prior_args(b)


def _perceptual_models(args, device: torch.device):
    """(LPIPS or None, InceptionFeatures or None) from ``--lpips-weights`` / ``--fid-weights``."""
    from ..experiments import perceptual

    lpips_model = inception = None
    if args.lpips_weights:
        paths = args.lpips_weights.split(",")
        if len(paths) != 2 or not all(paths):
            raise ValueError("--lpips-weights takes two paths separated by a comma: the backbone, then the linear "
                             "layers (e.g. alexnet-owt-7be5be79.pth,alex.pth)")
        lpips_model = perceptual.LPIPS.from_files(*paths).to(device)
    if args.fid_weights:
        inception = perceptual.InceptionFeatures.from_file(args.fid_weights).to(device)
    return lpips_model, inception

def run(args) -> int:
    from ..experiments import bench

    rank, world = dist_env()
    try:
        if args.suite:
            columns, title = bench.suite_columns(args.suite, args.noise), f"{args.suite}: {bench.SUITES[args.suite][0]}"
        else:
            columns, title = bench.parse_columns(args.tasks, args.noise), None
        methods = [m for m in args.methods.split(",") if m]
        if args.render_only:
            if world > 1:
                raise ValueError("--render-only runs no cells; run it without torchrun")
            return bench.render_only(args.out, methods, columns, title)
        if not args.images:
            raise ValueError("hrdis bench needs --images (a folder or .tar of clean images), or --render-only")
        images.check_output_path(Path(args.out) / "rows.jsonl", "--out")
        prior = load_prior_arg(args)
        lpips_model, inception = _perceptual_models(args, prior_device(prior))
        bench_images = bench.load_bench_images(args.images, prior.image_size, args.n, args.first, crop=args.crop)
        params = {**(steps_override(args.steps) or {}), **method_params(args)}
        bench.run_bench(prior, columns, methods, bench_images, args.out, seed=args.seed, figures=args.figures,
                        params=params, rank=rank, world=world, lpips_model=lpips_model, inception=inception)
        dist_done(world)
        if rank != 0:
            return 0  # rank 0 reports the failures of all ranks
        rows = bench.render(args.out, methods, columns, title, fid=inception is not None)
        return report_failures(bench.failed_cells(rows, methods, [c.label for c in columns]), args.out)
    finally:
        dist_close(world)
