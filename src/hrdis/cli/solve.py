"""``hrdis solve``: restore one image, simulated from a clean one (--input) or a real observation (--observed)."""

from __future__ import annotations

import json
import sys
import warnings

import torch

from .. import images, masks, metrics, operators, plausibility
from ..api import resolve_params, solve
from ..noise import parse_noise
from ..runtime import prior_device
from ..solvers import METHODS
from ..tasks import TASKS, get_task, observation_problem
from .options import add_method_args, add_prior_args, load_prior_arg, settings


def add_parser(sub) -> None:
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
    add_method_args(s)
    add_prior_args(s)


def run(args) -> None:
    for flag in ("--out", "--grid", "--history"):  # before any long work: a bad path fails now, not after the solve
        if getattr(args, flag[2:]):
            images.check_output_path(getattr(args, flag[2:]), flag)
    noise = parse_noise(args.noise)
    if args.input and not args.task:
        raise ValueError("--input needs --task (e.g. --task inpaint-box); see `hrdis info`")
    if args.task:
        get_task(args.task)
    prior = load_prior_arg(args)
    size = prior.image_size
    truth = None
    if args.input:
        task = get_task(args.task)
        truth = images.read_image(args.input, size=size, crop=args.resize)
        operator = task.operator(truth.shape[-1], args.seed, args.variant)
        y = noise(operator(truth), seed=args.seed)
    else:
        y_img, operator, task = _read_observation(args, size)
        y = operator(y_img) if operator.selects_pixels else y_img  # the holes of a photo are unknown: zero them
    device = prior_device(prior)
    y, operator, truth = y.to(device), operator.to(device), (truth.to(device) if truth is not None else None)
    if not args.no_check:  # the clean --input itself, else the observation's starting estimate
        verdict = plausibility.check(prior, *((truth, operators.Identity()) if truth is not None else (y, operator)))
        if verdict is not None and verdict.unlike:
            warnings.warn(verdict.message(), stacklevel=2)
    params = dict(steps=args.steps, beta=args.beta, lr=args.lr, obs_weight=args.obs_weight, reg_weight=args.reg_weight,
                  **settings(args))
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
    """(observation, operator, task) for a real degraded image (``tasks.observation_problem``): with --resize
    the image (and its mask) are square-cropped alike and resized to the size the measurement has."""
    im = images.open_image(args.observed)
    if args.mask:
        y_img = _fit(args.observed, im, size, args.resize)
        mask = masks.load_mask(args.mask, y_img.shape[-1], resize_from=im.size if args.resize else None)
        task, operator = observation_problem(y_img.shape[-1], task=args.task, mask=mask, seed=args.seed)
        return y_img, operator, task
    task, operator = observation_problem(size or im.size[0], task=args.task, scale=args.scale, seed=args.seed)
    measured = None if size is None else operator(torch.zeros(1, 3, size, size)).shape[-1]
    expected = "" if measured in (None, size) else f"for x{size // measured} at {size} px"
    return _fit(args.observed, im, measured, args.resize, expected), operator, task

def _fit(path, im, size: int | None, resize: bool, expected: str = "") -> torch.Tensor:
    """``im`` as a (1, 3, size, size) tensor: face-cropped and resized with --resize, else checked."""
    if size is not None:
        if resize:
            im = images.face_crop(im, size)
        elif im.size != (size, size):
            raise ValueError(images.size_error(path, im.size, size, expected or f"for the prior's {size} px"))
    return images.pil_to_tensor(im)
