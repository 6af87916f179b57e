"""Where HDR restorations go wrong: PSNR over the clipped pixels (|y| = 1, where y says only "at least
this bright/dark") and over the rest (where y = 2x fixes x exactly), per method, on held-out faces; and the
"stuck" pixels: unclipped in y but clipped in A(x), where clip's gradient is zero, so no gradient of the data
term can bring them back (their share of the pixels and of the squared measurement residual).

Usage: python scripts/hdr_regions.py [--first 9901] [--n 4] [--methods hrdis,reddiff] [--steps N]
(--steps overrides every method's N, e.g. to compare them at equal budgets.)
"""

from __future__ import annotations

import argparse
import statistics

import torch

from hrdis import tasks
from hrdis.experiments import bench
from hrdis.api import solve
from hrdis.priors import load_prior


def masked_psnr(x: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR over the pixels where mask is 1 (images in [-1, 1], so the peak-to-peak range is 2)."""
    mse = ((x - truth) ** 2 * mask).sum() / mask.sum().clamp_min(1)
    return (10 * torch.log10(4 / mse.clamp_min(1e-12))).item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="../shared/data/celeba-10k.tar")
    ap.add_argument("--first", type=int, default=9901)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--methods", default="hrdis,reddiff")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    prior = load_prior(None, autocast=torch.bfloat16)
    faces = bench.load_bench_images(args.images, prior.image_size, args.n, first=args.first)
    operator = tasks.get_task("hdr").make_operator(prior.image_size, 0)
    scores: dict[str, list[tuple[float, ...]]] = {}
    for face in faces:
        y = operator(face.image)
        clipped = (y.abs() >= 1).float()
        for method in args.methods.split(","):
            result = solve(y, operator, prior, method=method, task="hdr", steps=args.steps)
            ax = operator(result.image)
            stuck = (1 - clipped) * (ax.abs() >= 1).float()
            misfit = (y - ax) ** 2
            row = (masked_psnr(result.image, face.image, torch.ones_like(clipped)),
                   masked_psnr(result.image, face.image, clipped), masked_psnr(result.image, face.image, 1 - clipped),
                   stuck.mean().item(), ((misfit * stuck).sum() / misfit.sum().clamp_min(1e-12)).item())
            scores.setdefault(method, []).append(row)
            print(f"{face.name} {method}: {clipped.mean().item():.0%} clipped; PSNR all {row[0]:.2f}, "
                  f"clipped {row[1]:.2f}, unclipped {row[2]:.2f} dB; stuck {row[3]:.1%} of pixels, "
                  f"{row[4]:.0%} of the residual ({result.seconds:.0f} s)", flush=True)
    for method, rows in scores.items():
        means = [statistics.fmean(col) for col in zip(*rows)]
        print(f"mean over {len(rows)} faces, {method}: all {means[0]:.2f}, clipped {means[1]:.2f}, "
              f"unclipped {means[2]:.2f} dB; stuck {means[3]:.1%} of pixels, {means[4]:.0%} of the residual")


if __name__ == "__main__":
    main()
