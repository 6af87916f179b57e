"""Blind low-light restoration of held-out faces: writes docs/lowlight.png (truth | observed | restored).

Each face (CelebA files 009901.., never used for training) is darkened by the ``blind-lowlight`` task:
y = f x + M in intensities, with f in [0.25, 0.35] and a smooth veil M, both drawn per image. HRDIS-blind
(App. C.7) restores it without being told f or M. Prints PSNR per image and on average, for the
observation, for the solver's start (an auto-contrast stretch) and for the result, and f estimated vs true.

    python scripts/lowlight_example.py                      # 8 faces, the bundled prior, 300 steps
    python scripts/lowlight_example.py --n 1 --steps 5      # a smoke test
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from hrdis import images, load_prior, metrics, solve
from hrdis.experiments.bench import load_bench_images
from hrdis.noise import parse_noise
from hrdis.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
TASK = "blind-lowlight"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "celeba-10k.tar"),
                   help="folder or tar of faces (default: ../shared/data/celeba-10k.tar beside the repo)")
    p.add_argument("--first", type=int, default=9901, help="first file number (held-out faces start at 9501)")
    p.add_argument("--n", type=int, default=8, help="number of faces")
    p.add_argument("--steps", type=int, help="HRDIS steps (default: the task preset, 300)")
    p.add_argument("--noise", default="none", help="measurement noise, e.g. poisson:1.0 (shot noise of a dark scene)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gain-lr", type=float, help="Adam learning rate of log f (default: the solver's, 0.03)")
    p.add_argument("--offset-lr", type=float, help="Adam learning rate of M's grid (default: the solver's, 0.03)")
    p.add_argument("--obs-weight", type=float, help="lambda_1 (default: the task preset's, 1.0; 0.1 or 0.05 with --noise)")
    p.add_argument("--estimate-below", type=int,
                   help="update f and M only below this timestep (default: the solver's, 100; 1000 = every step, as in the paper)")
    p.add_argument("--offset-grid", type=int, help="side of M's grid (default: the solver's, 4)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the network's precision")
    p.add_argument("--prior", default="bundled", help="'bundled' or a prior folder")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=str(ROOT / "docs" / "lowlight.png"))
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.n < 1:
        raise SystemExit(f"--n must be positive, got {args.n}")
    torch.set_num_threads(args.threads)
    try:
        prior = load_prior(args.prior, autocast=torch.bfloat16 if args.precision == "bf16" else None)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"lowlight_example: {exc}; pass --prior FOLDER") from None
    noise = parse_noise(args.noise)
    faces = load_bench_images(args.data, prior.image_size, args.n, args.first)

    rows, scores = [], {"observed": [], "start": [], "restored": []}
    for face in faces:
        operator = get_task(TASK).make_operator(prior.image_size, face.index)  # the true f and M, for simulation
        observed = noise(operator(face.image), seed=face.index)
        overrides = {k: v for k, v in (("gain_lr", args.gain_lr), ("offset_lr", args.offset_lr),
                                       ("offset_grid", args.offset_grid),
                                       ("estimate_below", args.estimate_below),
                                       ("obs_weight", args.obs_weight)) if v is not None}
        result = solve(observed, operator, prior, "hrdis-blind", task=TASK, noise=noise, seed=args.seed,
                       steps=args.steps, **overrides)
        psnr = {name: metrics.psnr(x, face.image)[0]
                for name, x in (("observed", observed), ("start", result.init), ("restored", result.image))}
        for name, value in psnr.items():
            scores[name].append(value)
        print(f"{face.name}: f {operator.gain.item():.3f}, estimated {result.extras['gain'][0]:.3f}; PSNR observed "
              f"{psnr['observed']:.2f} dB, start {psnr['start']:.2f} dB, restored {psnr['restored']:.2f} dB "
              f"({result.seconds:.1f} s)")
        rows += [face.image, operator.measurement_image(observed), result.image]

    images.write_image(images.make_grid(rows, nrow=3), args.out)
    means = ", ".join(f"{name} {statistics.fmean(v):.2f} dB" for name, v in scores.items())
    print(f"mean PSNR over {len(faces)} faces: {means}")
    print(f"wrote {args.out} (rows: truth | observed | restored)")


if __name__ == "__main__":
    main()
