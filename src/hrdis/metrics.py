"""Image quality metrics on the [0, 1] scale, from scikit-image, plus measurement-side measures.

Inputs are tensors in [-1, 1] (B, 3, H, W); each function returns one float per image.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _to_numpy01(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) float64 in [0, 1]."""
    return ((x.detach().cpu().double().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def psnr(x: torch.Tensor, reference: torch.Tensor) -> list[float]:
    a, b = _to_numpy01(x), _to_numpy01(reference)
    return [float(peak_signal_noise_ratio(r, i, data_range=1.0)) for i, r in zip(a, b)]


def ssim(x: torch.Tensor, reference: torch.Tensor) -> list[float]:
    a, b = _to_numpy01(x), _to_numpy01(reference)
    return [float(structural_similarity(r, i, data_range=1.0, channel_axis=-1)) for i, r in zip(a, b)]


def residual(x: torch.Tensor, y: torch.Tensor, operator) -> list[float]:
    """Root-mean-square measurement residual ||y - A(x)|| / sqrt(m), per image."""
    with torch.no_grad():
        r = (y - operator(x)).flatten(1)
    return r.pow(2).mean(1).sqrt().tolist()
