"""Measurement operators: the physics y = A(x) of an inverse problem, kept apart from noise and solvers.

An operator maps images x of shape (B, C, H, W) in [-1, 1] to measurements y. Solvers and the benchmark
use five views of it:

- ``forward`` (also ``op(x)``): y = A(x), differentiable, so a solver can backpropagate a data loss;
- ``adjoint``: A^T y, the exact adjoint of a linear A (<A x, y> = <x, A^T y>);
- ``pinv``: A^+ y, a right inverse (A A^+ y = y wherever A is onto);
- ``measurement_image``: y turned into a displayable image for figure grids;
- ``initial_estimate``: where the optimisation solvers start, A^+ y except for blur (y itself).

All operators here are linear. They keep the dtype and device of their input (internal tensors are
cast on the fly, so float64 works for exact adjoint checks) and accept any batch size. An operator is an
``nn.Module`` whose tensors are buffers, so ``op.to(device)`` moves them all.

Measurement shapes, per operator:

=================  ===============================  ===========================================
operator           y shape                          A^+
=================  ===============================  ===========================================
Identity           (B, C, H, W)                     identity
Inpainting         (B, C, H, W), holes zeroed       mask * y (exact Moore-Penrose for 0/1 masks)
AveragePoolSR(s)   (B, C, H/s, W/s)                 nearest upsampling (exact Moore-Penrose)
BicubicSR(s, n)    (B, C, H/s, W/s)                 pinv of the 1-D matrices (exact Moore-Penrose)
BlockCS(rate)      (B, C, m, H/block, W/block)      adjoint (Phi has orthonormal rows)
Blur(kernel)       (B, C, H, W)                     Fourier inverse, zero where |K| <= pinv_tol
=================  ===============================  ===========================================
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter
from torch import Tensor, nn

from .svd import SVD, average_matrix, block_svd, circulant_svd, diagonal_svd, separable_svd

__all__ = ["AveragePoolSR", "BicubicSR", "BlockCS", "Blur", "Identity", "Inpainting", "Operator",
           "bicubic_upsample", "gaussian_kernel", "is_linear", "is_super_resolution", "motion_kernel"]


def check_images(x: Tensor, what: str = "images") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what} must have shape (B, C, H, W), got {tuple(x.shape)}; "
                         f"add a batch dimension with x[None]")


def _hw(size: int | tuple[int, int], what: str = "image_size") -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) for s in size)
            and min(size) > 0):
        raise ValueError(f"{what} must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


class Operator(nn.Module):
    """A measurement operator y = A(x); subclasses implement ``forward`` and, when linear, the rest.

    Every tensor an operator holds becomes a non-persistent buffer when assigned, so ``.to()`` moves it. A
    subclass need not call ``super().__init__()``: the module is set up before its ``__init__`` runs."""

    linear: bool = True
    name: str = "operator"
    # True when y is a picture (of x's size, or smaller for super-resolution), so a real degraded photo can
    # stand in for a simulated measurement (`hrdis solve --observed`); compressed samples and Fourier
    # magnitudes are not pictures.
    observable: bool = True
    # True when A^+ A is a 0/1 pixel mask (inpainting): the measurement observes some pixels exactly and
    # says nothing of the others. Samplers that hard-replace observed pixels (as the RED-diff code's PiGDM
    # does for its inpainting operator) do so only here.
    selects_pixels: bool = False
    # y is a picture of x at 1 / scale of its size (super-resolution) when the operator is observable and scale > 1.
    scale: int = 1

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        nn.Module.__init__(self)
        return self

    def __init__(self) -> None:
        pass  # ``__new__`` set the module up; calling nn.Module.__init__ again would drop buffers

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, Tensor) and not isinstance(value, nn.Parameter) and name not in self._buffers \
                and name not in self._parameters:
            self.__dict__.pop(name, None)
            self.register_buffer(name, value, persistent=False)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError(f"{self.name} has no adjoint (it is not linear)")

    def pinv(self, y: Tensor) -> Tensor:
        raise NotImplementedError(f"{self.name} has no pseudo-inverse")

    def measurement_image(self, y: Tensor) -> Tensor:
        """A displayable (B, C, h, w) image in [-1, 1] for figure grids."""
        return self.pinv(y).clamp(-1, 1)

    def initial_estimate(self, y: Tensor) -> Tensor:
        """Where the optimisation solvers (HRDIS, RED-diff, TV) start: A^+(y) unless an operator knows better."""
        return self.pinv(y)

    def equivalents(self, x: Tensor) -> list[Tensor]:
        """Images with exactly the measurement of x, x first. Only x for most operators; phase retrieval
        cannot tell x from its negative or its 180-degree rotation, and ``hrdis.api.solve`` lets the
        prior choose among them."""
        return [x]

    def svd(self, size: tuple[int, int]) -> SVD:
        """A = U diag(s) V^T on H x W images (``hrdis.svd``), for the spectral samplers (DDRM, PiGDM under
        noise). Linear operators with a known decomposition override this; ``has_svd`` says whether one does."""
        raise ValueError(f"{self.name} has no SVD here")

    @property
    def has_svd(self) -> bool:
        return type(self).svd is not Operator.svd

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def is_linear(op: Operator) -> bool:
    """Whether a solver may use ``adjoint`` / ``pinv`` of ``op`` as exact linear algebra."""
    return bool(getattr(op, "linear", False))


def is_super_resolution(op: Operator) -> bool:
    """Whether y is a smaller picture of x (``op.scale`` times smaller), which upsampling can turn back into one."""
    return bool(getattr(op, "observable", False)) and getattr(op, "scale", 1) > 1


class Identity(Operator):
    """y = x: denoising."""

    name = "identity"

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y

    def pinv(self, y: Tensor) -> Tensor:
        return y

    def svd(self, size: tuple[int, int]) -> SVD:
        return diagonal_svd(torch.ones(1, 1, *size))


class Inpainting(Operator):
    """y = mask * x with mask 1 on observed pixels and 0 in the holes; y keeps the image shape."""

    name = "inpainting"
    selects_pixels = True

    def __init__(self, mask: Tensor):
        if not isinstance(mask, Tensor):
            raise TypeError(f"the mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.dim() == 2:
            mask = mask[None, None]
        if mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError(f"the mask must have shape (1, 1, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
        # Binary masks make mask * y the exact Moore-Penrose inverse; soft masks would silently break that.
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("the mask must contain only 0 (hole) and 1 (observed); "
                             "threshold it with (mask > 0.5).float()")
        self.mask = mask.float()

    def _mask_for(self, x: Tensor) -> Tensor:
        check_images(x)
        if tuple(x.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise ValueError(f"the mask is {self.mask.shape[-2]}x{self.mask.shape[-1]} but the image is "
                             f"{x.shape[-2]}x{x.shape[-1]}; use a mask of the image's size")
        if self.mask.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"{self.mask.shape[0]} masks for a batch of {x.shape[0]} images; "
                             f"give one mask or one per image")
        return self.mask.to(x)

    def forward(self, x: Tensor) -> Tensor:
        return self._mask_for(x) * x

    def adjoint(self, y: Tensor) -> Tensor:
        return self._mask_for(y) * y

    def pinv(self, y: Tensor) -> Tensor:
        return self._mask_for(y) * y

    def measurement_image(self, y: Tensor) -> Tensor:
        return (self._mask_for(y) * y).clamp(-1, 1)  # holes show as mid-grey

    def svd(self, size: tuple[int, int]) -> SVD:
        return diagonal_svd(self.mask)  # V = U = I, s = the 0/1 mask (one per image if the masks differ)


class AveragePoolSR(Operator):
    """y = mean over each scale x scale block: super-resolution with a box downsampler.

    A A^T = I / scale^2, so A^+ = scale^2 A^T = nearest-neighbour upsampling, and A A^+ y = y exactly.
    """

    def __init__(self, scale: int):
        if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"the super-resolution scale must be a positive integer (2, 4, 8, ...), got {scale!r}")
        self.scale = int(scale)
        self.name = f"avgpool-sr{self.scale}"

    def forward(self, x: Tensor) -> Tensor:
        check_images(x)
        h, w = x.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"a {h}x{w} image cannot be average-pooled by {self.scale}; "
                             f"use an image size divisible by {self.scale}")
        return F.avg_pool2d(x, self.scale)

    def _upsample(self, y: Tensor) -> Tensor:
        check_images(y, "measurements")
        return y.repeat_interleave(self.scale, dim=-2).repeat_interleave(self.scale, dim=-1)

    def adjoint(self, y: Tensor) -> Tensor:
        return self._upsample(y) / self.scale**2

    def pinv(self, y: Tensor) -> Tensor:
        return self._upsample(y)

    def measurement_image(self, y: Tensor) -> Tensor:
        return y.clamp(-1, 1)  # the low-resolution image itself

    def svd(self, size: tuple[int, int]) -> SVD:
        """Separable: A = D_h (x) D_w, so the SVD is the Kronecker product of the 1-D averaging matrices'."""
        return separable_svd(average_matrix(size[0], self.scale), average_matrix(size[1], self.scale))


def bicubic_matrix(n: int, scale: int) -> Tensor:
    """The (n / scale, n) float64 matrix of 1-D antialiased bicubic downsampling (as PIL's resize).

    Obtained by resizing the identity with torch's antialiased bicubic, so it matches
    ``F.interpolate(..., mode="bicubic", antialias=True)`` exactly, including its boundary handling.
    """
    eye = torch.eye(n, dtype=torch.float64)[None, None]
    # Resizing only the rows of the identity: column j of the result is D applied to e_j.
    return F.interpolate(eye, size=(n // scale, n), mode="bicubic", antialias=True, align_corners=False)[0, 0]


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's imresize "bicubic")."""
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def resizer_matrix(n: int, scale: int) -> Tensor:
    """The (n / scale, n) float64 matrix of MATLAB-imresize-style antialiased bicubic downsampling with
    mirror-reflected borders: the ``Resizer`` of the DPS, DMPlug and DAPS authors' code (``util/resizer.py``,
    after Shocher's ResizeRight). Output o (1-based) sits at input coordinate c = o s - (s - 1)/2 (pixel
    centres); its weights are the cubic kernel stretched by s, k((c - j) / s) / s over the input pixels j
    within 2 s, normalised to sum 1; indices past an edge reflect back into the image (j = -1 reads pixel
    0, j = n reads n - 1). Inside, the rows equal ``bicubic_matrix``'s; the two outer rows at each border
    differ (torch renormalises the truncated kernel instead of mirroring it), by up to 0.08 at n = 64, s = 4.
    """
    m = n // scale
    centre = (np.arange(1, m + 1) - (m - n / scale) / 2) * scale + 0.5 * (1 - scale)  # 1-based input coords
    width = 4.0 * scale
    left = np.floor(centre - width / 2)
    taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None] - 1  # 0-based candidate pixels
    weights = cubic_kernel((centre[:, None] - taps - 1) / scale) / scale
    weights = weights / weights.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(n), np.arange(n - 1, -1, -1)])
    index = mirror[np.mod(taps.astype(np.int64), 2 * n)]
    matrix = np.zeros((m, n))
    for o in range(m):
        np.add.at(matrix[o], index[o], weights[o])
    return torch.from_numpy(matrix)


BORDERS = ("clamp", "mirror")


class BicubicSR(Operator):
    """Antialiased bicubic downsampling by ``scale`` (like PIL / Matlab imresize), as a separable matrix.

    y = D_h x D_w^T per channel, with ``matrix_h`` (H/s, H) and ``matrix_w`` (W/s, W); both have full
    row rank, so A^+ y = P_h y P_w^T with P = pinv(D) is the exact Moore-Penrose inverse and
    A A^+ y = y. The 1-D matrices also give the SVD of A (A = D_h (x) D_w) for SVD-based solvers.

    ``border``: "clamp" (torch's ``F.interpolate(mode="bicubic", antialias=True)``, ``bicubic_matrix``) or
    "mirror" (the DPS / DMPlug / DAPS authors' ``Resizer``, ``resizer_matrix``); they differ only in the two
    outer output rows and columns at each border.
    """

    def __init__(self, scale: int, image_size: int | tuple[int, int], border: str = "clamp"):
        if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"the super-resolution scale must be a positive integer (2, 4, 8, ...), got {scale!r}")
        self.scale = int(scale)
        self.image_size = _hw(image_size)
        h, w = self.image_size
        if h % self.scale or w % self.scale:
            raise ValueError(f"a {h}x{w} image cannot be downsampled by {self.scale}; "
                             f"use an image size divisible by {self.scale}")
        if border not in BORDERS:
            raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
        self.border = border
        self.name = f"bicubic-sr{self.scale}" + ("-mirror" if border == "mirror" else "")
        matrix = bicubic_matrix if border == "clamp" else resizer_matrix
        d_h, d_w = matrix(h, self.scale), matrix(w, self.scale)
        self.matrix_h, self.matrix_w = d_h.float(), d_w.float()
        self.pinv_h, self.pinv_w = torch.linalg.pinv(d_h).float(), torch.linalg.pinv(d_w).float()

    def _check(self, x: Tensor) -> None:
        check_images(x)
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"BicubicSR was built for {self.image_size[0]}x{self.image_size[1]} images but got "
                             f"{x.shape[-2]}x{x.shape[-1]}; build it with image_size={x.shape[-1]}")

    def _check_measurement(self, y: Tensor) -> None:
        check_images(y, "measurements")
        expected = (self.matrix_h.shape[0], self.matrix_w.shape[0])
        if tuple(y.shape[-2:]) != expected:
            raise ValueError(f"BicubicSR x{self.scale} of {self.image_size[0]}x{self.image_size[1]} images gives "
                             f"{expected[0]}x{expected[1]} measurements, got {y.shape[-2]}x{y.shape[-1]}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.matrix_h.to(x) @ x @ self.matrix_w.to(x).T

    def adjoint(self, y: Tensor) -> Tensor:
        self._check_measurement(y)
        return self.matrix_h.to(y).T @ y @ self.matrix_w.to(y)

    def pinv(self, y: Tensor) -> Tensor:
        self._check_measurement(y)
        return self.pinv_h.to(y) @ y @ self.pinv_w.to(y).T

    def measurement_image(self, y: Tensor) -> Tensor:
        return y.clamp(-1, 1)

    def svd(self, size: tuple[int, int]) -> SVD:
        if tuple(size) != self.image_size:
            raise ValueError(f"BicubicSR was built for {self.image_size} images, not {tuple(size)}")
        return separable_svd(self.matrix_h.double(), self.matrix_w.double())


def bicubic_upsample(y: Tensor, scale: int) -> Tensor:
    """Plain bicubic interpolation by ``scale``, clamped to [-1, 1]: the classical SR baseline."""
    check_images(y)
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"the upsampling scale must be a positive integer, got {scale!r}")
    # Bicubic overshoots at edges; clamping keeps the result a valid image.
    return F.interpolate(y, scale_factor=int(scale), mode="bicubic", align_corners=False).clamp(-1, 1)


@functools.lru_cache(maxsize=16)
def _orthonormal_rows(m: int, n: int, seed: int) -> Tensor:
    """An (m, n) float32 matrix with orthonormal rows: QR of a seeded Gaussian (cached, QR takes ~0.1 s)."""
    gaussian = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, _ = torch.linalg.qr(gaussian)  # (n, m) with orthonormal columns
    return q.T.contiguous().float()


class BlockCS(Operator):
    """Block compressed sensing: every block x block patch of every channel, as a vector of block^2
    (row-major), is measured by the same m x block^2 matrix ``phi`` with orthonormal rows
    (m = round(rate * block^2); QR of a seeded Gaussian matrix).

    Measurements have shape (B, C, m, H / block, W / block): y[b, c, :, i, j] = phi @ patch(i, j).
    Because phi phi^T = I, the adjoint (phi^T per block, reassembled) is also the Moore-Penrose inverse.
    Implemented as a strided convolution, so it is fast and differentiable.
    """

    observable = False  # y holds compressed samples, not a picture

    def __init__(self, rate: float, block: int = 32, seed: int = 0):
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f"the compressed-sensing rate must lie in (0, 1], got {rate!r}")
        if not isinstance(block, (int, np.integer)) or isinstance(block, bool) or block < 1:
            raise ValueError(f"the block size must be a positive integer, got {block!r}")
        self.rate, self.block, self.seed = float(rate), int(block), int(seed)
        self.num_measurements = int(round(rate * block * block))
        if self.num_measurements < 1:
            raise ValueError(f"rate {rate} keeps no measurement of a {block}x{block} block; use a larger rate or block")
        self.name = f"cs{self.rate:g}"
        self.phi = _orthonormal_rows(self.num_measurements, self.block * self.block, self.seed).clone()

    def _check(self, x: Tensor) -> None:
        check_images(x)
        h, w = x.shape[-2:]
        if h % self.block or w % self.block:
            raise ValueError(f"a {h}x{w} image does not split into {self.block}x{self.block} blocks; "
                             f"use an image size divisible by {self.block}")

    def _weight(self, like: Tensor) -> Tensor:
        return self.phi.to(like).reshape(self.num_measurements, 1, self.block, self.block)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        b, c, h, w = x.shape
        y = F.conv2d(x.reshape(b * c, 1, h, w), self._weight(x), stride=self.block)
        return y.reshape(b, c, self.num_measurements, h // self.block, w // self.block)

    def adjoint(self, y: Tensor) -> Tensor:
        if not isinstance(y, Tensor) or y.dim() != 5 or y.shape[2] != self.num_measurements:
            raise ValueError(f"compressed-sensing measurements must have shape (B, C, {self.num_measurements}, "
                             f"H/{self.block}, W/{self.block}), got {tuple(getattr(y, 'shape', ()))}")
        b, c, m, nh, nw = y.shape
        x = F.conv_transpose2d(y.reshape(b * c, m, nh, nw), self._weight(y), stride=self.block)
        return x.reshape(b, c, nh * self.block, nw * self.block)

    def pinv(self, y: Tensor) -> Tensor:
        return self.adjoint(y)

    def svd(self, size: tuple[int, int]) -> SVD:
        """Per block: U = I, s = 1 on the m measured coordinates, V^T = [phi; a basis of its null space]."""
        return block_svd(self.phi.double(), self.block, size)


def gaussian_kernel(size: int, sigma: float) -> Tensor:
    """A size x size isotropic Gaussian blur kernel (float32, sums to 1), centred at pixel size // 2
    for odd sizes."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"the kernel size must be a positive integer, got {size!r}")
    if not isinstance(sigma, (int, float)) or not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"the Gaussian kernel's sigma must be a positive number, got {sigma!r}")
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    profile = torch.exp(-coords**2 / (2 * sigma**2))
    kernel = torch.outer(profile, profile)
    return (kernel / kernel.sum()).float()


def motion_kernel(size: int, intensity: float, seed: int) -> Tensor:
    """A size x size camera-shake kernel (float32, sums to 1) from a seeded random trajectory.

    In the spirit of the ``motionblur`` package used by DPS: a path of short random steps whose
    directions wander within +-max_angle (0 <= max_angle <= intensity * pi), so intensity 0 gives a
    straight streak and 1 a strongly curved, jittery one. The path is drawn at twice the resolution,
    softened by a small Gaussian blur and downsampled with Lanczos (antialiasing), centred on its
    centre of mass. Unlike the package, a path longer than the canvas is shrunk to fit instead of
    being clipped, and very short paths are lengthened to a tenth of the diagonal so every kernel blurs.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"the kernel size must be a positive integer, got {size!r}")
    if not isinstance(intensity, (int, float)) or not 0 <= intensity <= 1:
        raise ValueError(f"the motion-blur intensity must lie in [0, 1], got {intensity!r}")
    rng = np.random.default_rng(seed)
    canvas = 2 * size  # drawn large, then downsampled: antialiasing
    diagonal = canvas * math.sqrt(2)
    width = max(1, int(diagonal / 150))

    path_length = max(0.1, 0.75 * (rng.uniform() + rng.uniform(0, intensity**2))) * diagonal
    mean_step = (1 - intensity + 0.1) * diagonal  # irregular paths take shorter steps, so more turns
    steps: list[float] = []
    while sum(steps) < path_length and len(steps) < 10_000:
        steps.append(min(rng.beta(1, 30) * mean_step, path_length))

    max_angle = rng.uniform(0, intensity * math.pi)
    jitter = rng.beta(2, 20)  # probability that the direction swings to the other side
    angles = [rng.uniform(-max_angle, max_angle)]
    for _ in steps[1:]:
        angle = rng.triangular(0, intensity * max_angle, max_angle + 0.1)
        side = 1.0 if angles[-1] >= 0 else -1.0
        angles.append(-side * angle if rng.uniform() < jitter else side * angle)

    path = np.concatenate([[0], np.cumsum(np.asarray(steps) * np.exp(1j * np.asarray(angles)))])
    path -= path.mean()
    path *= np.exp(1j * rng.uniform(0, math.pi))  # a random overall direction
    extent = 2 * max(np.abs(path.real).max(), np.abs(path.imag).max())
    room = canvas - 2 * width - 2
    if extent > room:
        path *= room / extent
    path += (canvas - 1) / 2 * (1 + 1j)

    image = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(image).line([(p.real, p.imag) for p in path], fill=255, width=width, joint="curve")
    radius = int(diagonal * 0.01)
    if radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(radius=radius))
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    kernel = torch.from_numpy(np.asarray(image, dtype=np.float64).copy())
    if kernel.sum() <= 0:  # nothing survived the downsampling of a tiny kernel: no blur
        kernel = torch.zeros(size, size, dtype=torch.float64)
        kernel[size // 2, size // 2] = 1
    return (kernel / kernel.sum()).float()


class Blur(Operator):
    """Circular convolution with a k x k kernel (normalised to sum 1), computed with the FFT.

    The kernel's pixel (k // 2, k // 2) is its centre, so a centred delta gives the identity. With
    the transfer function K = rfft2(kernel placed at the origin), A x = irfft2(K X) and
    A^T y = irfft2(conj(K) Y) exactly. ``pinv`` is the truncated Fourier inverse: it divides by K
    where |K| > pinv_tol * max|K| and zeroes the rest. The default 1e-2 caps noise amplification
    at 100x (8-bit quantisation or measurement noise would otherwise blow up in the frequencies a
    Gaussian blur all but erases); a well-conditioned kernel is inverted exactly. K is cached per
    image size, device and dtype.
    """

    name = "blur"

    def __init__(self, kernel: Tensor | np.ndarray, pinv_tol: float = 1e-2):
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        if kernel.dim() != 2:
            raise ValueError(f"the blur kernel must be a 2-D (k, k) array, got shape {tuple(kernel.shape)}")
        if not torch.isfinite(kernel).all() or not kernel.sum() > 0:
            raise ValueError("the blur kernel must be finite with a positive sum; "
                             "build it with gaussian_kernel or motion_kernel")
        if not 0 <= pinv_tol < 1:
            raise ValueError(f"pinv_tol must lie in [0, 1), got {pinv_tol!r}")
        self.kernel = (kernel / kernel.sum()).float()
        self.pinv_tol = float(pinv_tol)
        self._transfer_cache: dict[tuple, Tensor] = {}

    def transfer_function(self, height: int, width: int, like: Tensor | None = None) -> Tensor:
        """K = rfft2 of the centred kernel on a height x width grid: (height, width // 2 + 1), complex."""
        device = like.device if like is not None else self.kernel.device
        dtype = like.dtype if like is not None and like.is_floating_point() else torch.float32
        key = (height, width, str(device), dtype)
        if key not in self._transfer_cache:
            kh, kw = self.kernel.shape
            if kh > height or kw > width:
                raise ValueError(f"a {kh}x{kw} blur kernel does not fit a {height}x{width} image; use a smaller kernel")
            padded = torch.zeros(height, width, dtype=dtype, device=device)
            padded[:kh, :kw] = self.kernel.to(device=device, dtype=dtype)
            # Move the kernel centre to pixel (0, 0) so the convolution does not shift the image.
            padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
            self._transfer_cache[key] = torch.fft.rfft2(padded)
        return self._transfer_cache[key]

    def _convolve(self, x: Tensor, transfer) -> Tensor:
        check_images(x)
        h, w = x.shape[-2:]
        k = transfer(self.transfer_function(h, w, x))
        return torch.fft.irfft2(torch.fft.rfft2(x) * k, s=(h, w))

    def forward(self, x: Tensor) -> Tensor:
        return self._convolve(x, lambda k: k)

    def adjoint(self, y: Tensor) -> Tensor:
        return self._convolve(y, torch.conj)

    def measurement_image(self, y: Tensor) -> Tensor:
        return y.clamp(-1, 1)  # the blurred image itself

    def initial_estimate(self, y: Tensor) -> Tensor:
        # The blurred image, not A^+ y: the inverse divides y's noise by |K|, up to 1 / pinv_tol (100x). On
        # 4 tuning faces under Gaussian noise 0.05, A^+ y scored 9-11 dB and HRDIS from it 27.4 / 19.5 dB
        # (Gaussian / motion blur), from y 29.7 / 25.9. The paper too starts from "the degraded image".
        return y.clone()

    def pinv(self, y: Tensor) -> Tensor:
        def truncated_inverse(k: Tensor) -> Tensor:
            magnitude = k.abs()
            keep = magnitude > self.pinv_tol * magnitude.max()
            return torch.where(keep, 1 / torch.where(keep, k, torch.ones_like(k)), torch.zeros_like(k))
        return self._convolve(y, truncated_inverse)

    def svd(self, size: tuple[int, int]) -> SVD:
        """The Hartley basis of a circular convolution (``hrdis.svd.circulant_svd``); frequencies with
        |K| <= pinv_tol max|K| count as unobserved, as in ``pinv``."""
        return circulant_svd(self, size)
