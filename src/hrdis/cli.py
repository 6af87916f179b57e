"""The ``hrdis`` command line: a thin layer over the Python API.

    hrdis solve --input face.png --task inpaint-box --out restored.png --grid grid.png
    hrdis solve --observed lowres.png --task sr4 --out restored.png
    hrdis info
    hrdis sample --n 64 --out samples.png
    hrdis train --data faces.tar --out runs/face64
    hrdis bench --suite linear --methods hrdis,reddiff,dps --images faces.tar --first 9901 --n 100 --out runs/t1
    hrdis ablate --param beta --values 0,0.1,0.2,0.5,1 --tasks inpaint-ff20,sr4 --images faces.tar --n 20 --out runs/beta
    hrdis diversity --input face.png --task sr16 --seeds 8 --out runs/div
    torchrun --nproc_per_node 4 -m hrdis bench --num-images 100 ...   (cells shared over processes; rank 0 merges)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import torch

from . import images, masks, metrics, operators, plausibility
from .ablate import PARAMS as ABLATION_PARAMS
from .api import resolve_params, solve
from .noise import parse_noise
from .priors import load_prior
from .runtime import add_runtime_args, compile_prior, prior_device, prior_options
from .solvers import METHODS, VARIANTS
from .tasks import TASKS, get_task


def _add_method_args(p: argparse.ArgumentParser) -> None:
    """--variant and --set: which form of the method runs, and any parameter of its config."""
    p.add_argument("--variant", choices=VARIANTS, default="default",
                   help="'official': run each method as its official code does (each difference is a parameter "
                   "of its config, see `hrdis info`); default: as its paper describes it")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="any parameter of the method's config, e.g. --set timestep_grid=strided (repeatable; "
                   "VALUE is read as JSON when it parses, else as text)")


def _settings(args) -> dict:
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


def _method_params(args) -> dict:
    """--set and --variant as parameters of ``solve`` (bench and ablate pass them on to every cell)."""
    params = _settings(args)
    if args.variant != "default":
        params["variant"] = args.variant
    return params


def _add_prior_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior", default="bundled", help="'bundled' (default), a prior folder, or a guided-diffusion .pt")
    p.add_argument("--prior-config", help="a .pt checkpoint's guided-diffusion options: a JSON file or a preset "
                   "(ffhq_10m, 256x256_diffusion_uncond); default: the preset its file name matches, else "
                   "inferred from its keys and shapes")
    p.add_argument("--bf16", action="store_true", help="alias of --precision bf16")
    add_runtime_args(p)


def _load_prior(args):
    prior = load_prior(args.prior, config=args.prior_config, **prior_options(args))
    return compile_prior(prior) if getattr(args, "compile", False) else prior


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrdis", description="Restore images with a diffusion prior (HRDIS and peers).")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="restore one image", description=(
        "Either simulate a measurement from a clean image (--input, with --task) or restore a real "
        "degraded observation (--observed, with --mask or --scale / an SR --task)."))
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="a clean image: the measurement is simulated from it (and PSNR reported)")
    src.add_argument("--observed", help="a degraded image to restore (inpainting, SR, deblurring, denoising)")
    s.add_argument("--task", help=f"the problem and its preset: {', '.join(TASKS)}")
    s.add_argument("--mask", help="with --observed: a PNG mask, white = observed, black = hole")
    s.add_argument("--scale", type=int, help="with --observed: the SR factor (average pooling)")
    s.add_argument("--method", default="hrdis", choices=list(METHODS))
    s.add_argument("--steps", type=int, help="number of steps N (default: the task preset)")
    s.add_argument("--seed", type=int, default=0, help="seeds the solver and the simulated mask/noise")
    s.add_argument("--noise", default="none", help="measurement noise: none, gaussian:SIGMA, poisson:LEVEL, speckle:SIGMA")
    s.add_argument("--beta", type=float, help="weight of fresh noise in the hybrid noise (HRDIS: 0.2)")
    s.add_argument("--lr", type=float, help="Adam learning rate")
    s.add_argument("--obs-weight", type=float, help="lambda_1, weight of the data term")
    s.add_argument("--reg-weight", type=float, help="lambda_2, weight of the diffusion regulariser")
    s.add_argument("--restarts", type=int, help="best of this many seeds by measurement residual (phase retrieval: 4)")
    s.add_argument("--sequential-restarts", action="store_true",
                   help="run restarts one after another (default: as one batch, faster but restarts x the memory)")
    s.add_argument("--resize", action="store_true",
                   help="square-crop and resize the image to the size the prior needs (a low-resolution --observed "
                   "to the prior's size / --scale), and a --mask drawn at the image's size alike")
    s.add_argument("--out", required=True, help="where to write the restored PNG (missing folders are created)")
    s.add_argument("--grid", help="also write a labelled comparison grid: truth | measurement | start | result "
                   "(PSNR/SSIM when the truth is known), each panel enlarged to at least 256 px")
    s.add_argument("--history", help="also write the per-step history as JSON")
    s.add_argument("--no-check", action="store_true",
                   help="skip the check that the image looks like the prior's training data (faces, for the "
                   "bundled prior); without it, an unlike image gets a warning (6 network evaluations)")
    _add_method_args(s)
    _add_prior_args(s)

    i = sub.add_parser("info", help="list tasks, methods and the prior in use")
    _add_prior_args(i)

    sm = sub.add_parser("sample", help="draw unconditional samples from the prior (DDIM)")
    sm.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sm.add_argument("--steps", type=int, default=50, help="DDIM steps per sample (default 50)")
    sm.add_argument("--eta", type=float, default=0.0,
                    help="DDIM's eta: 0 (default) is deterministic, 1 is DDPM-like sampling")
    sm.add_argument("--seed", type=int, default=0, help="seeds the starting noise (default 0)")
    sm.add_argument("--out", required=True, help="PNG grid to write, each sample enlarged to at least 256 px "
                    "(missing folders are created)")
    _add_prior_args(sm)

    b = sub.add_parser("bench", help="run (task, method, image) cells and render tables", description=(
        "One JSON line per finished cell in OUT/rows.jsonl; a re-run skips finished cells."))
    cols = b.add_mutually_exclusive_group(required=True)
    cols.add_argument("--tasks", help="comma-separated columns: task names, or task@noise (e.g. inpaint-ff20@gaussian:0.1)")
    cols.add_argument("--suite", help="a named column set of the paper's tables: linear (Table 1/9), ffhq (Table 2/10), "
                      "nonlinear (Table 4/11), noisy (inpainting under four noise models)")
    b.add_argument("--methods", required=True, help="comma-separated method names")
    b.add_argument("--images", help="a folder or .tar of clean images (required unless --render-only)")
    b.add_argument("--first", type=int, help="first file number to use (CelebA held-out faces: 9901)")
    b.add_argument("--n", "--num-images", dest="n", type=int, default=100,
                   help="number of images (spell it --num-images under torchrun, whose parser claims --n)")
    b.add_argument("--crop", default="celeba", choices=list(images.CROPS),
                   help="the square face crop taken from each image: celeba (default; the bundled prior's training "
                   "crop), tight (the face fills about 20%% more of the frame, about FFHQ's alignment) or loose "
                   "(about 20%% less, edges extended by reflection); rows record it")
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
                   "(alex.pth or vgg.pth), comma-separated; see the README, nothing is downloaded")
    b.add_argument("--fid-weights", metavar="PATH",
                   help="also write table_fid.md (FID per method and column, restorations vs truths) with "
                   "pytorch-fid's Inception weights, pt_inception-2015-12-05-6726825d.pth")
    _add_method_args(b)
    _add_prior_args(b)

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
    _add_method_args(a)
    _add_prior_args(a)

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
    _add_method_args(d)
    _add_prior_args(d)

    sub.add_parser("perf", help="performance report: step time split, overhead, batch throughput, memory vs DPS "
                   "(hrdis perf --help)", add_help=False)
    t = sub.add_parser("train", help="train a diffusion prior on a folder or tar of images")
    t.add_argument("--data", required=True, help="a folder or .tar of images")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl and prior/ (the exported prior)")
    t.add_argument("--size", type=int, default=64)
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--lr-decay-steps", type=int, default=0,
                   help="anneal the learning rate (cosine, to --lr-min) over the last this many of --steps")
    t.add_argument("--lr-min", type=float, help="the annealed learning rate (default: --lr / 20)")
    t.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0)
    t.add_argument("--max-index", type=int, default=9500,
                   help="skip files numbered above this (CelebA: 9501-10000 are held-out test faces); -1 for none")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--init-from", help="warm-start from a prior folder (e.g. the bundled prior) when no checkpoint is left")
    t.add_argument("--no-bf16", action="store_true", help="train in float32")
    t.add_argument("--prediction", choices=["v", "eps"],
                   help="network target (new runs: v); given with --resume it switches a run (fine-tuning)")
    return parser


def cmd_solve(args) -> None:
    for flag in ("--out", "--grid", "--history"):  # before any long work: a bad path fails now, not after the solve
        if getattr(args, flag[2:]):
            images.check_output_path(getattr(args, flag[2:]), flag)
    noise = parse_noise(args.noise)
    if args.input and not args.task:
        raise ValueError("--input needs --task (e.g. --task inpaint-box); see `hrdis info`")
    if args.task:
        get_task(args.task)
    prior = _load_prior(args)
    size = prior.image_size
    truth = None
    if args.input:
        task = get_task(args.task)
        truth = images.read_image(args.input, size=size, crop=args.resize)
        operator = task.operator(truth.shape[-1], args.seed, args.variant)
        y = noise(operator(truth), seed=args.seed)
    else:
        y_img, operator, task = _read_observation(args, size)
        y = operator(y_img) if isinstance(operator, operators.Inpainting) else y_img
    device = prior_device(prior)
    y, operator, truth = y.to(device), operator.to(device), (truth.to(device) if truth is not None else None)
    if not args.no_check:  # the clean --input itself, else the observation's starting estimate
        verdict = plausibility.check(prior, *((truth, operators.Identity()) if truth is not None else (y, operator)))
        if verdict is not None and verdict.unlike:
            warnings.warn(verdict.message(), stacklevel=2)
    params = dict(steps=args.steps, beta=args.beta, lr=args.lr, obs_weight=args.obs_weight, reg_weight=args.reg_weight,
                  **_settings(args))
    used = resolve_params(args.method, task, noise, image_size=size, variant=args.variant, **params)
    print(f"hrdis: {args.method} on {task.name} (preset at {size} px) with {json.dumps(used)}", file=sys.stderr)
    _warn_if_few_steps(args.method, args.steps, resolve_params(args.method, task, noise, image_size=size))
    result = solve(y, operator, prior, args.method, task=task, noise=noise, seed=args.seed, reference=truth,
                   restarts=args.restarts, variant=args.variant, progress=True,
                   batch_restarts=not args.sequential_restarts, **params)
    result.image, result.init, y = result.image.cpu(), result.init.cpu(), y.cpu()
    truth, operator = (truth.cpu() if truth is not None else None), operator.to("cpu")
    images.write_image(result.image, args.out)
    line = f"wrote {args.out} ({result.seconds:.1f} s, {result.nfe} network evaluations)"
    scores = ""
    if truth is not None:
        scores = f"PSNR {metrics.psnr(result.image, truth)[0]:.2f} dB, SSIM {metrics.ssim(result.image, truth)[0]:.3f}"
        line += f"; {scores} (init {metrics.psnr(result.init, truth)[0]:.2f} dB)"
    print(line)
    if args.grid:
        panels = [(truth, "truth")] if truth is not None else []
        shown = operator.measurement_image(y)
        if shown.shape[-1] != result.image.shape[-1]:  # low-res measurement: nearest upsample for display
            shown = torch.nn.functional.interpolate(shown, size=result.image.shape[-2:], mode="nearest")
        panels += [(shown, "measurement"), (result.init, "start"), (result.image, f"{args.method}\n{scores}".strip())]
        images.write_image(images.labelled_grid(panels), args.grid)
        print(f"wrote {args.grid} ({' | '.join(label.split(chr(10))[0] for _, label in panels)})")
    if args.history:
        images.atomic_write_bytes(args.history, json.dumps(
            {"method": result.method, "params": result.params, "history": result.history,
             "extras": {k: v for k, v in result.extras.items() if not isinstance(v, torch.Tensor)}},
            indent=1, default=str).encode())


# Methods whose step sizes (Adam's lr, DPS's zeta) were tuned together with their preset's step count:
# far fewer steps leave them short of the measurement (DPS at 50 of 1000 steps returns an unrelated face).
STEP_TIED_METHODS = ("hrdis", "reddiff", "cr", "hrdis-blind", "drddim", "dps")


def _warn_if_few_steps(method: str, steps: int | None, preset: dict) -> None:
    """Warn when --steps is below a quarter of the preset's steps for a method in ``STEP_TIED_METHODS``."""
    if steps is None or method not in STEP_TIED_METHODS:
        return
    preset_steps = preset["steps"]  # the task's preset, else the method's own default (DPS: 1000)
    if steps < preset_steps / 4:
        warnings.warn(f"--steps {steps} is below a quarter of {method}'s preset {preset_steps}; its step sizes are "
                      f"tuned for the preset's steps, so the result may not fit the measurement", stacklevel=2)


def _read_observation(args, size: int | None):
    """(observation, operator, task) for a real degraded image: --mask (inpainting), --scale / an SR task
    (the observation is the low-resolution image), or a task whose measurement is an image. With --resize
    the image (and its mask) are square-cropped alike and resized to the size the prior needs."""
    im = images.open_image(args.observed)
    if args.mask:
        y_img = _fit(args.observed, im, size, args.resize)
        mask = masks.load_mask(args.mask, y_img.shape[-1], resize_from=im.size if args.resize else None)
        task = get_task(args.task) if args.task else _named_like("inpaint", "inpaint-box", "inpainting of a given mask")
        return y_img, operators.Inpainting(mask), task
    scale = args.scale
    task_scale = _sr_scale(args.task)
    if scale is not None and task_scale is not None and scale != task_scale:
        raise ValueError(f"--scale {scale} contradicts --task {args.task}; give one of them")
    scale = scale if scale is not None else task_scale
    if scale is not None:
        if scale < 1:
            raise ValueError(f"--scale must be a positive integer, got {scale}")
        if size is not None and size % scale:
            raise ValueError(f"--scale {scale} does not divide the prior's {size} px; use a factor of {size}")
        low = None if size is None else size // scale
        y_img = _fit(args.observed, im, low, args.resize, f"for x{scale} at {size} px")
        op = operators.BicubicSR(scale, size) if args.task == "sr4-bicubic" else operators.AveragePoolSR(scale)
        task = get_task(args.task) if args.task else _named_like(f"sr{scale}", "sr4", f"x{scale} super-resolution")
        return y_img, op, task
    if args.task in OBSERVABLE_TASKS:
        y_img = _fit(args.observed, im, size, args.resize)
        return y_img, get_task(args.task).make_operator(y_img.shape[-1], args.seed), get_task(args.task)
    raise ValueError(f"--observed needs --mask (inpainting), --scale / --task srN (super-resolution), or --task "
                     f"{'|'.join(OBSERVABLE_TASKS)}; compressed-sensing and phase measurements are not images")


def _fit(path, im, size: int | None, resize: bool, expected: str = "") -> torch.Tensor:
    """``im`` as a (1, 3, size, size) tensor: face-cropped and resized with --resize, else checked."""
    if size is not None:
        if resize:
            im = images.face_crop(im, size)
        elif im.size != (size, size):
            raise ValueError(images.size_error(path, im.size, size, expected or f"for the prior's {size} px"))
    return images.pil_to_tensor(im)


def _sr_scale(task: str | None) -> int | None:
    """The factor of an SR task name (sr4, sr4-bicubic), else None."""
    if task and task.startswith("sr") and task[2:].split("-")[0].isdigit():
        return int(task[2:].split("-")[0])
    return None


def _named_like(name: str, like: str, description: str):
    """A task called ``name`` with the presets (Table 5 and the per-size overrides) of the named task ``like``:
    a user's mask or SR factor gets the same tuned preset as the equivalent --task."""
    import dataclasses

    return TASKS[name] if name in TASKS else dataclasses.replace(get_task(like), name=name, description=description)


# Tasks whose measurement is an image of the same size as x, so a real observation can be restored.
# blind-lowlight's operator carries a simulated gain and offset, which hrdis-blind never reads.
OBSERVABLE_TASKS = ("denoise", "deblur-gauss", "deblur-motion", "deblur-nonlinear", "hdr", "blind-lowlight")


def _format_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def cmd_info(args) -> None:
    print("tasks:")
    for t in TASKS.values():
        tuned = "".join(f"; at {size} px: {_format_params(o.params)}"
                        + (f", noisy_obs_factors={o.noisy_obs_factors}" if o.noisy_obs_factors else "")
                        for size, o in t.tuned.items())
        print(f"  {t.name:16s} {t.description}  [{_format_params(t.preset)}{tuned}]")
    print("methods (--variant official: as the official code runs them):")
    for m in METHODS.values():
        print(f"  {m.name:16s} {m.description}")
        if m.config.OFFICIAL:
            print(f"  {'':16s} official: {_format_params(m.config.OFFICIAL)} ({m.config.OFFICIAL_SOURCE})")
    print("noise: none, gaussian:SIGMA, poisson:LEVEL, speckle:SIGMA")
    prior = _load_prior(args)
    print(f"prior: {prior.describe()}")
    meta = getattr(prior, "meta", {})
    if meta:
        print("  " + ", ".join(f"{k}={v}" for k, v in meta.items()))


def cmd_sample(args) -> None:
    from .sampling import ddim_sample

    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    if args.steps <= 0:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    images.check_output_path(args.out)
    prior = _load_prior(args)
    x = ddim_sample(prior, args.n, steps=args.steps, eta=args.eta, seed=args.seed, progress=True)
    ncol = int(math.ceil(args.n**0.5))
    panels = [(x[i:i + 1], f"sample {i + 1}") for i in range(args.n)]
    images.write_image(images.labelled_grid(panels, ncol=ncol), args.out)
    print(f"wrote {args.out} ({args.n} samples, {args.steps} DDIM steps, eta {args.eta}, seed {args.seed})")


def _dist_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; joins a gloo process group when world > 1."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
    return rank, world


def _dist_done(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _dist_close(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _perceptual_models(args, device: torch.device):
    """(LPIPS or None, InceptionFeatures or None) from ``--lpips-weights`` / ``--fid-weights``."""
    from . import perceptual

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


def cmd_bench(args) -> int:
    from . import bench

    rank, world = _dist_env()
    try:
        if args.suite:
            columns, title = bench.suite_columns(args.suite, args.noise), f"{args.suite}: {bench.SUITES[args.suite][0]}"
        else:
            columns, title = bench.parse_columns(args.tasks, args.noise), None
        methods = [m for m in args.methods.split(",") if m]
        if args.render_only:
            return _render_only(args.out, methods, columns, title, world)
        if not args.images:
            raise ValueError("hrdis bench needs --images (a folder or .tar of clean images), or --render-only")
        images.check_output_path(Path(args.out) / "rows.jsonl", "--out")
        prior = _load_prior(args)
        lpips_model, inception = _perceptual_models(args, prior_device(prior))
        bench_images = bench.load_bench_images(args.images, prior.image_size, args.n, args.first, crop=args.crop)
        params = {**(_steps_override(args.steps) or {}), **_method_params(args)}
        bench.run_bench(prior, columns, methods, bench_images, args.out, seed=args.seed, figures=args.figures,
                        params=params, rank=rank, world=world, lpips_model=lpips_model, inception=inception)
        _dist_done(world)
        if rank != 0:
            return 0  # rank 0 reports the failures of all ranks
        rows = _render(args.out, methods, columns, title, fid=inception is not None)
        return _report_failures(bench.failed_cells(rows, methods, [c.label for c in columns]), args.out)
    finally:
        _dist_close(world)


def _render_only(out: str, methods: list[str], columns: list, title: str | None, world: int) -> int:
    """``hrdis bench --render-only``: tables and figures from the rows already in ``out``."""
    from . import bench

    if world > 1:
        raise ValueError("--render-only runs no cells; run it without torchrun")
    if not bench.all_rows(out):
        raise ValueError(f"{out} holds no rows to render; run hrdis bench without --render-only first")
    _render(out, methods, columns, title)
    return 0


def _render(out: str, methods: list[str], columns: list, title: str | None, fid: bool = False) -> list[dict]:
    """Fold the rank files into rows.jsonl, write the tables (and the FID table), the figure grids, and print
    the PSNR table; returns every row."""
    from . import bench

    rows = bench.merge_rank_rows(out)
    tables = bench.write_tables(rows, out, methods, columns, title=title)
    if fid:
        tables.append(bench.write_fid_table(rows, out, methods, columns, title=title))
    bench.write_figures(out, methods, columns)
    print((Path(out) / "table_psnr.md").read_text())
    print(f"{len(rows)} rows in {out}; tables: {', '.join(p.name for p in tables)}")
    return rows


def _steps_override(steps: int | None) -> dict | None:
    """``--steps`` as solver parameters, checked before the run (inside it every cell would fail alike)."""
    if steps is None:
        return None
    if steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps}")
    return {"steps": steps}


def _report_failures(failed: list[dict], out) -> int:
    """Exit status 1 with a one-line summary when cells failed (after every other cell and the tables)."""
    if not failed:
        return 0
    print(f"hrdis: {len(failed)} cell{'s' if len(failed) > 1 else ''} failed; see the \"error\" rows in "
          f"{Path(out) / 'rows.jsonl'} and \"Failed cells\" in the tables; re-run the same command to retry them",
          file=sys.stderr)
    return 1


def cmd_ablate(args) -> int:
    from . import ablate, bench

    values = [ablate.parse_value(args.param, v) for v in args.values.split(",") if v.strip()]
    for name in ("steps", "lr"):
        if args.param == name and getattr(args, name) is not None:
            raise ValueError(f"--{name} is the swept parameter here; drop one of them")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if not args.no_plots:
        try:
            ablate._pyplot()  # fail before the run, not after it
        except ImportError as exc:
            raise ValueError(str(exc)) from None
    rank, world = _dist_env()
    try:
        prior = _load_prior(args)
        tasks = [t for t in args.tasks.split(",") if t]
        bench_images = bench.load_bench_images(args.images, prior.image_size, args.n, args.first)
        params = {**(_steps_override(args.steps) or {}), **_method_params(args)}
        if args.lr is not None:
            params["lr"] = args.lr
        ablate.run_ablation(prior, args.param, values, tasks, bench_images, args.out, method=args.method,
                            noise=args.noise, seed=args.seed, params=params, figures=args.figures,
                            rank=rank, world=world)
        _dist_done(world)
        if rank != 0:
            return 0
        bench.merge_rank_rows(args.out)
        rows = [r for r in bench.all_rows(args.out) if r.get("param") == args.param and r["method"] == args.method]
        written = ablate.write_ablation(rows, args.out, args.param, values, tasks, plots=not args.no_plots,
                                         noise=args.noise)
        print((Path(args.out) / "ablation_psnr.md").read_text())
        print(f"{len(rows)} rows in {args.out}; wrote {', '.join(p.name for p in written)}")
        labels = [c.label for c in bench.parse_columns(tasks, args.noise)]
        return _report_failures(bench.failed_cells(rows, values, labels, row_of=ablate._value_of), args.out)
    finally:
        _dist_close(world)


def cmd_diversity(args) -> None:
    from .diversity import run_diversity

    images.check_output_path(Path(args.out) / "diversity.json", "--out")
    prior = _load_prior(args)
    truth = images.read_image(args.input, size=prior.image_size, crop=args.resize)
    params = {**{k: v for k, v in (("steps", args.steps), ("beta", args.beta)) if v is not None}, **_method_params(args)}
    summary = run_diversity(prior, truth, args.task, args.out, seeds=args.seeds, method=args.method,
                            noise=args.noise, **params)
    print(f"{args.method} on {args.task}, {args.seeds} seeds: mean pairwise RMSE {summary['mean_pairwise_rmse']:.4f}, "
          f"mean per-pixel std {summary['mean_pixel_std']:.4f} ([0, 1] scale)")
    print(f"wrote {args.out}/std.png, samples.png, diversity.json")


def cmd_train(args) -> None:
    import signal
    import threading

    from .training import TrainOptions, train

    # SIGTERM (a scheduler's or a session's end) or Ctrl-C: finish the step, write a checkpoint, stop.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    folder = train(TrainOptions(
        data=args.data, out=args.out, size=args.size, steps=args.steps, batch=args.batch, lr=args.lr,
        lr_decay_steps=args.lr_decay_steps, lr_min=args.lr_min,
        max_minutes=args.max_minutes, checkpoint_minutes=args.checkpoint_minutes,
        max_index=None if args.max_index < 0 else args.max_index, resume=args.resume, init_from=args.init_from,
        bf16=not args.no_bf16, prediction=args.prediction), should_stop=stop.is_set)
    print(f"{'stopped on a signal; ' if stop.is_set() else ''}exported the EMA prior to {folder}")


COMMANDS = {"solve": cmd_solve, "info": cmd_info, "sample": cmd_sample, "bench": cmd_bench, "train": cmd_train,
            "ablate": cmd_ablate, "diversity": cmd_diversity}


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, without the source line Python shows by default."""
    print(f"hrdis: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():  # restores showwarning when done (main is also called from tests)
        warnings.showwarning = _print_warning
        if argv[:1] == ["perf"]:  # its own parser (hrdis.perf)
            from .perf import main as perf_main
            return perf_main(argv[1:])
        return _run(build_parser().parse_args(argv))


def _run(args) -> int:
    try:
        status = COMMANDS[args.command](args) or 0  # bench/ablate: 1 when some cells failed
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"hrdis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hrdis: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
