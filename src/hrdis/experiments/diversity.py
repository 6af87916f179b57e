"""Sample diversity (the paper's Fig. 5): restore one measurement with several seeds and measure the spread.

``per_pixel_std``: the standard deviation over seeds of each pixel ([0, 1] scale, averaged over the colour
channels). ``mean_pairwise_rmse``: the mean over all pairs of seeds of the RMSE between their results
([0, 1] scale). The measurement (mask, noise) is fixed by ``measurement_seed``; only the solver seed varies.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch

from .. import images, metrics
from ..api import solve
from ..noise import parse_noise
from ..priors import Prior
from ..tasks import get_task


def per_pixel_std(results: torch.Tensor) -> torch.Tensor:
    """(S, 3, H, W) in [-1, 1] -> (H, W): std over the S seeds on the [0, 1] scale, mean over channels."""
    x01 = (results.double().clamp(-1, 1) + 1) / 2
    return x01.std(0, unbiased=False).mean(0)


def mean_pairwise_rmse(results: torch.Tensor) -> float:
    x01 = (results.double().clamp(-1, 1) + 1) / 2
    pairs = list(itertools.combinations(range(x01.shape[0]), 2))
    if not pairs:
        return 0.0
    return float(sum((x01[i] - x01[j]).pow(2).mean().sqrt() for i, j in pairs) / len(pairs))


def run_diversity(prior: Prior, truth: torch.Tensor, task: str, out: str | Path, seeds: int = 8, method: str = "hrdis",
                  noise: str = "none", measurement_seed: int = 0, first_seed: int = 0, **params) -> dict:
    """Write OUT/std.png (per-pixel std, white = 0.25 or more), OUT/samples.png (truth | measurement |
    each seed's result), OUT/diversity.json; return the summary."""
    if seeds < 2:
        raise ValueError(f"--seeds must be at least 2 to measure diversity, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = get_task(task)
    noise_model = parse_noise(noise)
    op = t.make_operator(truth.shape[-1], measurement_seed)
    y = noise_model(op(truth), seed=measurement_seed)
    device = next(iter(list(prior.parameters()) + list(prior.buffers())), torch.zeros(0)).device
    if device.type != "cpu":
        op, y, truth = op.to(device), y.to(device), truth.to(device)
    runs = [solve(y, op, prior, method, task=t, noise=noise_model, seed=first_seed + k, **params) for k in range(seeds)]
    results = torch.cat([r.image for r in runs])
    std = per_pixel_std(results)
    std_scale = 0.25
    images.write_image((std / std_scale).clamp(0, 1).mul(2).sub(1).float().expand(1, 3, *std.shape), out / "std.png")
    shown = op.measurement_image(y)
    if shown.shape[-1] != truth.shape[-1]:
        shown = torch.nn.functional.interpolate(shown, size=truth.shape[-2:], mode="nearest")
    psnrs = [metrics.psnr(r.image, truth)[0] for r in runs]
    panels = [(truth, "truth"), (shown, "measurement")] + [
        (r.image, f"seed {first_seed + k}\n{p:.2f} dB") for k, (r, p) in enumerate(zip(runs, psnrs))]
    images.write_image(images.labelled_grid(panels, ncol=min(len(panels), 6)), out / "samples.png")
    summary = {
        "task": task, "method": method, "noise": noise, "seeds": list(range(first_seed, first_seed + seeds)),
        "mean_pairwise_rmse": mean_pairwise_rmse(results), "mean_pixel_std": float(std.mean()),
        "max_pixel_std": float(std.max()), "std_png_white_at": std_scale,
        "psnr_per_seed": psnrs,
        "params": runs[0].params,
    }
    images.atomic_write_bytes(out / "diversity.json", json.dumps(summary, indent=1, default=str).encode())
    return summary
