"""Nonlinear measurement operators (HRDIS paper, Sec. 4.2, Table 5 and App. C.7).

All images are (B, C, H, W) in [-1, 1]; ``forward`` is differentiable, so HRDIS (which only needs the
gradient of its data term) handles them unchanged. ``pinv`` is not an inverse but the solver's
initialisation, as in the DPS / RED-diff code. ``linear`` is False: no solver may use adjoints.

- ``PhaseRetrieval(oversample)``: y = |F(pad(x))|, the Fourier magnitude of the zero-padded image.
- ``HDR()``: y = clip(2x, -1, 1), an image taken with twice the exposure, its highlights clipped.
- ``NonlinearBlur(kernel)``: blur in linear light seen through a camera response,
  y = crf(k * crf^-1(x)), a weight-free stand-in for the paper's learned (bkse) blur.
- ``BlindGainOffset(gain, offset)``: y = f x + M in intensities (App. C.7), the low-light model whose f
  and M a blind solver (``hrdis.solvers.blind``) estimates along with x.

Measurement noise (``hrdis.noise``) applies as for linear operators: HDR, nonlinear-blur and gain/offset
measurements are images in [-1, 1], so Gaussian, Poisson and speckle noise all make sense. Phase
retrieval magnitudes are not images: use Gaussian noise there (Poisson and speckle noise refuse them).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .operators import Blur, Operator, check_images

__all__ = ["BlindGainOffset", "HDR", "NonlinearBlur", "PhaseRetrieval", "camera_response",
           "inverse_camera_response", "smooth_veil", "soft_saturation"]


def _to_intensity(x: Tensor) -> Tensor:
    return (x + 1) / 2


def _to_display(intensity: Tensor) -> Tensor:
    return 2 * intensity - 1


# --------------------------------------------------------------------------------------------------
# Phase retrieval


def _centred_fft2(x: Tensor) -> Tensor:
    """The unitary 2-D DFT with the zero frequency in the middle (fastMRI's fft2c, used by DPS)."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def _centred_ifft2(k: Tensor) -> Tensor:
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


class PhaseRetrieval(Operator):
    """Fourier phase retrieval: y = |F(pad(x))|, per channel.

    pad surrounds the n x n image with p = floor(oversample / 8 * n) zeros on each side (p = 16 for
    n = 64 and oversample 2.0, DPS's 64 at 256 px); F is the centred unitary 2-D DFT, so ||y|| = ||x||
    (Parseval) and y has shape (B, C, n + 2p, n + 2p). The phase is lost: y does not change when x is
    shifted inside its padding, rotated by 180 degrees, or negated (zero is mid-grey, so -x is the
    photographic negative). Only the prior tells these apart, which is why the paper keeps the best of
    four runs.

    ``pinv`` is the initialisation of the DPS / RED-diff code, |F^-1(y)| with the padding cropped: the
    inverse transform of the magnitudes is the image's autocorrelation-like centre peak, not an
    estimate of x; HRDIS's first 250 fresh-noise steps wash it out.

    ``unit_range``: measure the image mapped to [0, 1], y = |F(pad((x + 1) / 2))|, as the DAPS authors' code
    does (DPS and HRDIS pad x in [-1, 1]). Then -x is no longer equivalent to x, and ``pinv`` maps back.
    """

    linear = False
    observable = False  # y holds Fourier magnitudes, not a picture
    name = "phase-retrieval"

    def __init__(self, oversample: float = 2.0, padding_for_size: int | None = None, unit_range: bool = False):
        if not isinstance(oversample, (int, float)) or isinstance(oversample, bool) or not 0 <= oversample <= 16:
            raise ValueError(f"oversample must be a number in [0, 16], got {oversample!r}")
        if padding_for_size is not None and not (isinstance(padding_for_size, int) and padding_for_size > 0):
            raise ValueError(f"padding_for_size must be a positive integer, got {padding_for_size!r}")
        self.oversample = float(oversample)
        self.padding_for_size = padding_for_size
        self.unit_range = bool(unit_range)

    def padding(self, image_size: int) -> int:
        """Zeros added on each side of an image_size x image_size image: oversample / 8 of its side, or of
        ``padding_for_size`` when given (the RED-diff / HRDIS code pads 2.0 / 8 of 256 = 64 px at any size)."""
        return int(math.floor(self.oversample / 8 * (self.padding_for_size or image_size)))

    def image_size(self, measurement_size: int) -> int:
        """The image side n whose padded size n + 2 p(n) is measurement_size."""
        for n in range(1, measurement_size + 1):
            if n + 2 * self.padding(n) == measurement_size:
                return n
        raise ValueError(f"{measurement_size} px is not the padded size of any image at oversample "
                         f"{self.oversample:g}; is this a phase-retrieval measurement?")

    def forward(self, x: Tensor) -> Tensor:
        check_images(x)
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"phase retrieval needs square images, got {x.shape[-2]}x{x.shape[-1]}")
        p = self.padding(x.shape[-1])
        if self.unit_range:
            x = x * 0.5 + 0.5
        return _centred_fft2(F.pad(x, (p, p, p, p))).abs()

    def pinv(self, y: Tensor) -> Tensor:
        check_images(y, "measurements")
        n = self.image_size(y.shape[-1])
        p = self.padding(n)
        x = _centred_ifft2(y.to(torch.complex64 if y.dtype != torch.float64 else torch.complex128)).abs()[
            ..., p:p + n, p:p + n].to(y.dtype)
        return x * 2 - 1 if self.unit_range else x

    def equivalents(self, x: Tensor) -> list[Tensor]:
        """x, -x and their 180-degree rotations: |F(-z)| = |F(z)|, and flipping the padded image is a
        reflection and a one-pixel circular shift, which keep |F| too. (Each channel could also flip on its
        own, since y is per channel; those 60 colour variants are not offered.)"""
        rotated = x.flip(-2, -1)
        return [x, rotated] if self.unit_range else [x, -x, rotated, -rotated]

    def measurement_image(self, y: Tensor) -> Tensor:
        """The log-magnitude spectrum, scaled per image to [-1, 1] (the usual way to show a diffraction pattern)."""
        check_images(y, "measurements")
        log_magnitude = torch.log1p(y.clamp_min(0))
        peak = log_magnitude.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return 2 * log_magnitude / peak - 1


# --------------------------------------------------------------------------------------------------
# High dynamic range


class HDR(Operator):
    """y = clip(2x, -1, 1): twice the exposure, highlights and shadows clipped (RED-diff's HDR task).

    The clip has zero gradient where it saturates, so the data term says nothing about the clipped
    pixels beyond "at least this bright": the prior fills them in. That is the problem, not a bug.
    """

    linear = False
    name = "hdr"

    def forward(self, x: Tensor) -> Tensor:
        check_images(x)
        return (2 * x).clamp(-1, 1)

    def pinv(self, y: Tensor) -> Tensor:
        check_images(y, "measurements")
        return y / 2

    def measurement_image(self, y: Tensor) -> Tensor:
        return y.clamp(-1, 1)


# --------------------------------------------------------------------------------------------------
# Nonlinear blur: a camera response around a linear blur


def _response_constants(gamma: float, toe: float) -> tuple[float, float]:
    offset = toe ** (1 / gamma)
    return offset, (1 + toe) ** (1 / gamma) - offset


def camera_response(linear_light: Tensor, gamma: float = 2.2, toe: float = 0.01) -> Tensor:
    """crf(v) = ((v + c)^(1/gamma) - c^(1/gamma)) / ((1 + c)^(1/gamma) - c^(1/gamma)), c = ``toe``.

    A gamma curve (crf(0) = 0, crf(1) = 1) whose small toe c keeps the slope at black finite (a pure
    power 1/gamma has infinite slope at 0, which would give infinite gradients on dark pixels).
    """
    offset, scale = _response_constants(gamma, toe)
    return ((linear_light.clamp_min(0) + toe) ** (1 / gamma) - offset) / scale


def inverse_camera_response(intensity: Tensor, gamma: float = 2.2, toe: float = 0.01) -> Tensor:
    """crf^-1: display intensity in [0, 1] -> linear light in [0, 1] (exact inverse of ``camera_response``)."""
    offset, scale = _response_constants(gamma, toe)
    return (intensity.clamp_min(0) * scale + offset) ** gamma - toe


def soft_saturation(v: Tensor, knee: float = 0.8) -> Tensor:
    """Identity below ``knee``, then knee + (1 - knee) tanh((v - knee) / (1 - knee)): highlights roll off
    smoothly towards 1 (slope 1 at the knee, so the curve is C^1, and never exactly 0 above it)."""
    if knee >= 1:
        return v
    headroom = 1 - knee
    return torch.where(v <= knee, v, knee + headroom * torch.tanh((v - knee) / headroom))


class NonlinearBlur(Operator):
    """A camera blurring a scene: y = 2 crf(s(exposure * k * crf^-1((x + 1) / 2))) - 1.

    crf^-1 undoes the camera's gamma (``gamma``, with a small linear-ish toe), so the blur k (a fixed
    ``operators.Blur``, circular, normalised) averages linear light as optics and motion do; s is a
    soft saturation of the sensor above ``knee``; crf re-applies the gamma. Bright streaks therefore
    stay bright and saturate, unlike a blur of the gamma-encoded image, and the operator is nonlinear
    though it needs no network weights.

    The paper used the learned bkse blur (Tran et al., 2021). The official HRDIS / RED-diff code draws a
    new random kernel code on *every call*, so the data term compares y with a differently blurred mu
    at each step; here the kernel is fixed when the operator is built, as a measurement requires.

    ``pinv`` returns the observation itself (as the official code's initialisation of a blurry image):
    a Fourier inverse would amplify noise in the frequencies the kernel erases.
    """

    linear = False
    name = "nonlinear-blur"

    def __init__(self, kernel: Tensor | np.ndarray, gamma: float = 2.2, knee: float = 0.8, exposure: float = 1.0,
                 toe: float = 0.01):
        for label, value, low in (("gamma", gamma, 0.0), ("exposure", exposure, 0.0), ("toe", toe, 0.0)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= low:
                raise ValueError(f"{label} must be a positive number, got {value!r}")
        if not isinstance(knee, (int, float)) or not 0 < knee <= 1:
            raise ValueError(f"knee must lie in (0, 1], got {knee!r}")
        self.blur = Blur(kernel)
        self.gamma, self.knee, self.exposure, self.toe = float(gamma), float(knee), float(exposure), float(toe)

    @property
    def kernel(self) -> Tensor:
        return self.blur.kernel

    def forward(self, x: Tensor) -> Tensor:
        check_images(x)
        linear_light = inverse_camera_response(_to_intensity(x), self.gamma, self.toe)
        sensor = soft_saturation(self.exposure * self.blur(linear_light), self.knee)
        return _to_display(camera_response(sensor, self.gamma, self.toe))

    def pinv(self, y: Tensor) -> Tensor:
        check_images(y, "measurements")
        return y.clone()

    def measurement_image(self, y: Tensor) -> Tensor:
        return y.clamp(-1, 1)


# --------------------------------------------------------------------------------------------------
# Blind gain and offset (low light)


def smooth_veil(image_size: int, seed: int, strength: float = 0.08, channels: int = 3) -> Tensor:
    """A smooth additive veil (1, channels, n, n) in intensity units, in [0, ~strength]: a seeded linear
    gradient plus a wide glow, slightly tinted per channel (stray light, sensor black-level drift)."""
    g = torch.Generator().manual_seed(int(seed))
    coords = torch.linspace(-1, 1, image_size, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angle = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64)
    gradient = (xx * torch.cos(angle) + yy * torch.sin(angle) + 1.5) / 3  # in [0, 1]
    centre = torch.rand(2, generator=g, dtype=torch.float64) * 1.6 - 0.8
    width = 0.5 + 0.5 * torch.rand((), generator=g, dtype=torch.float64)
    glow = torch.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * width**2))
    tint = 0.8 + 0.4 * torch.rand(channels, 1, 1, generator=g, dtype=torch.float64)
    veil = strength * tint * (0.5 * gradient + 0.5 * glow)
    return veil[None].float()


class BlindGainOffset(Operator):
    """y = f x + M in intensities: (y + 1) / 2 = f (x + 1) / 2 + M (App. C.7, after GDP).

    f (``gain``) is a scalar per image, M (``offset``) a map broadcastable to the image, in intensity
    units [0, 1]. In the [-1, 1] display range this is y = f x + (f - 1 + 2M). A low-light photo has
    f ~ 0.1-0.4 and a smooth M. The operator simulates a measurement with its own f and M; a non-blind
    solver given it uses them (an oracle), while ``hrdis-blind`` ignores them and estimates both,
    through ``with_parameters`` with its own values.
    """

    linear = False  # affine, and f, M are unknowns of the blind problem
    name = "gain-offset"

    def __init__(self, gain: float | Tensor = 1.0, offset: float | Tensor = 0.0):
        gain = torch.as_tensor(gain, dtype=torch.float32)
        if not torch.isfinite(gain).all() or not (gain > 0).all():
            raise ValueError(f"the gain f must be positive and finite, got {gain.tolist()!r}")
        offset = torch.as_tensor(offset, dtype=torch.float32)
        if not torch.isfinite(offset).all():
            raise ValueError("the offset map M must be finite")
        self.gain = gain.reshape(-1, 1, 1, 1) if gain.dim() else gain
        self.offset = offset

    @classmethod
    def random_lowlight(cls, image_size: int, seed: int) -> "BlindGainOffset":
        """A seeded low-light degradation: f uniform in [0.25, 0.35] and a ``smooth_veil`` M."""
        gain = 0.25 + 0.1 * torch.rand((), generator=torch.Generator().manual_seed(int(seed) + 7919)).item()
        return cls(gain, smooth_veil(image_size, seed))

    @staticmethod
    def with_parameters(x: Tensor, gain: Tensor | float, offset: Tensor | float) -> Tensor:
        """A_{f, M}(x) for any f, M (differentiable in all three)."""
        check_images(x)
        return _to_display(gain * _to_intensity(x) + offset)

    def forward(self, x: Tensor) -> Tensor:
        return self.with_parameters(x, self.gain.to(x), self.offset.to(x))

    def pinv(self, y: Tensor) -> Tensor:
        """(y - M) / f with this operator's f and M (an oracle: blind solvers do not call it)."""
        check_images(y, "measurements")
        return _to_display((_to_intensity(y) - self.offset.to(y)) / self.gain.to(y))

    def measurement_image(self, y: Tensor) -> Tensor:
        return y.clamp(-1, 1)
