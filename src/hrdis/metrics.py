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


def high_frequency_energy(x: torch.Tensor, radius: float = 0.25) -> list[float]:
    """Energy of the 2-D FFT outside ``radius`` x Nyquist (radial frequency), summed over channels, per image.

    Frequencies are in cycles per pixel (Nyquist = 0.5); the image is taken on the [0, 1] scale.
    """
    x01 = (x.detach().cpu().double().clamp(-1, 1) + 1) / 2
    h, w = x01.shape[-2:]
    fy = torch.fft.fftfreq(h, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(w, dtype=torch.float64).view(1, -1)
    outside = (fy.pow(2) + fx.pow(2)).sqrt() > radius * 0.5
    power = torch.fft.fft2(x01).abs().pow(2)  # (B, C, H, W)
    return (power * outside).flatten(1).sum(1).tolist()


def hf_ratio(x: torch.Tensor, reference: torch.Tensor, radius: float = 0.25) -> list[float]:
    """Spectral sharpness: high-frequency energy of ``x`` over that of ``reference`` (see
    ``high_frequency_energy``). 1 = as much fine detail as the truth, < 1 blurrier, > 1 noisier/ringing."""
    return [a / max(b, 1e-12) for a, b in
            zip(high_frequency_energy(x, radius), high_frequency_energy(reference, radius))]
