"""Singular value decompositions of linear operators, A = U diag(s) V^T, in the form the spectral samplers
(DDRM, PiGDM's noisy form) use: functions applying V^T, V, U^T, U to batches, and the singular values.

Each linear operator that has one returns it from ``Operator.svd(size)`` (``hrdis.operators``), built with
the helpers here: a diagonal (inpainting, identity), a separable product of 1-D matrices (average-pooling
and bicubic super-resolution), a per-block orthonormal basis (block compressed sensing) and the Hartley basis
of a circular convolution (blur). A new operator provides its own the same way and works with DDRM and
PiGDM unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SVD:
    """A = U diag(s) V^T for each channel, in spectral coordinates of length N = H * W per channel.

    ``singulars``: (1 or B, 1, N), s_i >= 0, zero on the null space of A. ``vt``: images (B, C, H, W)
    -> (B, C, N); ``v``: its inverse (V is orthogonal). ``ut``: measurements -> (B, C, N), U^T y
    placed on the coordinates with s_i > 0 (zero elsewhere); ``u``: (B, C, N) -> measurements, reading
    only those coordinates. So A x = u(singulars * vt(x)).
    """

    singulars: Tensor
    vt: Callable[[Tensor], Tensor]
    v: Callable[[Tensor], Tensor]
    ut: Callable[[Tensor], Tensor]
    u: Callable[[Tensor], Tensor]
    # False: one spectral vector per image (B, 1, C * N) instead of per channel, as the reference code lays
    # its coordinates out; ``measured``: how many leading coordinates U^T y fills there (None: all).
    per_channel: bool = True
    measured: int | None = None

    def coordinate_shape(self, batch: int, channels: int) -> tuple[int, int, int]:
        return (batch, channels if self.per_channel else 1, self.singulars.shape[-1])


def diagonal_svd(mask: Tensor) -> SVD:
    """A = diag(mask): U = V = I, s = the 0/1 mask. The mask may differ per image (B, 1, H, W)."""
    h, w = mask.shape[-2:]
    s = mask.float().flatten(-2)  # (Bm, 1, N)

    def ut(y):
        return y.flatten(-2) * s.to(y)  # holes carry no measurement, whatever y holds there

    return SVD(s, vt=lambda x: x.flatten(-2), v=lambda z: z.unflatten(-1, (h, w)), ut=ut,
               u=lambda z: z.unflatten(-1, (h, w)) * s.to(z).unflatten(-1, (h, w)))


def average_matrix(n: int, scale: int) -> Tensor:
    """The (n / scale, n) matrix of 1-D average pooling."""
    if n % scale:
        raise ValueError(f"a size of {n} cannot be average-pooled by {scale}")
    row = torch.full((1, scale), 1.0 / scale, dtype=torch.float64)
    return torch.kron(torch.eye(n // scale, dtype=torch.float64), row)


def separable_svd(d_h: Tensor, d_w: Tensor) -> SVD:
    """Y = D_h X D_w^T: with D = U diag(s) V^T per axis (full V), V^T x = V_h^T X V_w and
    s_ij = s_h[i] s_w[j] on the top-left (m_h, m_w) block, zero elsewhere."""
    u_h, s_h, vt_h = torch.linalg.svd(d_h)  # u (m, m), s (m,), vt (n, n)
    u_w, s_w, vt_w = torch.linalg.svd(d_w)
    (m_h, h), (m_w, w) = d_h.shape, d_w.shape
    s = torch.zeros(h, w, dtype=torch.float64)
    s[:m_h, :m_w] = torch.outer(s_h, s_w)
    mats = [m.float() for m in (u_h, vt_h, u_w, vt_w)]

    def vt(x):
        u_h, vt_h, u_w, vt_w = (m.to(x) for m in mats)
        return (vt_h @ x @ vt_w.T).flatten(-2)

    def v(z):
        u_h, vt_h, u_w, vt_w = (m.to(z) for m in mats)
        return vt_h.T @ z.unflatten(-1, (h, w)) @ vt_w

    def ut(y):
        u_h, vt_h, u_w, vt_w = (m.to(y) for m in mats)
        return F.pad(u_h.T @ y @ u_w, (0, w - m_w, 0, h - m_h)).flatten(-2)

    def u(z):
        u_h, vt_h, u_w, vt_w = (m.to(z) for m in mats)
        return u_h @ z.unflatten(-1, (h, w))[..., :m_h, :m_w] @ u_w.T

    return SVD(s.float().flatten()[None, None], vt, v, ut, u)


def block_svd(phi: Tensor, block: int, size: tuple[int, int]) -> SVD:
    """Every block x block patch p is measured as phi p, phi (m, block^2) with orthonormal rows:
    U = I, s = 1 on the first m coordinates of each patch, V^T = [phi; a basis of its null space]."""
    height, width = size
    if height % block or width % block:
        raise ValueError(f"a {height}x{width} image does not split into {block}x{block} blocks")
    m, n = phi.shape
    q, _ = torch.linalg.qr(phi.T, mode="complete")  # columns m.. of q span the complement of phi's rows
    basis = torch.cat([phi, q[:, m:].T]).float()  # V^T per patch, (n, n)
    patches = (height // block) * (width // block)
    s = torch.zeros(n, patches)
    s[:m] = 1.0

    def vt(x):
        b, c = x.shape[:2]
        cols = F.unfold(x.reshape(b * c, 1, height, width), block, stride=block)  # (bc, n, patches), row-major
        return (basis.to(x) @ cols).reshape(b, c, n * patches)

    def v(z):
        b, c = z.shape[:2]
        cols = basis.to(z).T @ z.reshape(b * c, n, patches)
        return F.fold(cols, (height, width), block, stride=block).reshape(b, c, height, width)

    def ut(y):
        b, c = y.shape[:2]
        return F.pad(y.reshape(b, c, m, patches), (0, 0, 0, n - m)).flatten(-2)

    def u(z):
        b, c = z.shape[:2]
        return z.reshape(b, c, n, patches)[:, :, :m].reshape(b, c, m, height // block, width // block)

    return SVD(s.flatten()[None, None], vt, v, ut, u)


def hartley(x: Tensor) -> Tensor:
    """The orthonormal 2-D discrete Hartley transform, sum_xy x cas(2 pi (k x / H + l y / W)) / sqrt(HW).

    Real, orthogonal and its own inverse; cas = cos + sin, hence Re(F x) - Im(F x) with F the unitary DFT."""
    spectrum = torch.fft.fft2(x.float(), norm="ortho")
    return (spectrum.real - spectrum.imag).to(x.dtype)


def circulant_svd(operator, size: tuple[int, int]) -> SVD:
    """Circular convolution, A = F^H diag(K) F. A^T A = F^H diag(|K|^2) F is a symmetric circulant, and since
    |K| is even in frequency (a real kernel) the real Hartley basis diagonalises it: V^T = the Hartley
    transform, s = |K|, and U = A V diag(1/s) on the observed coordinates, so U^T y = (V^T A^T y) / s.

    Frequencies with |K| <= pinv_tol * max|K| count as unobserved (s = 0), as in ``Blur.pinv``: there y holds
    too little of x to be trusted, and DDRM leaves them to the prior. So A x = u(s * vt(x)) up to those."""
    height, width = size
    k = torch.fft.fft2(torch.fft.irfft2(operator.transfer_function(height, width), s=(height, width)))
    magnitude = k.abs().double()
    s = torch.where(magnitude > operator.pinv_tol * magnitude.max(), magnitude, torch.zeros(()).double()).float()

    def inverse_s(z):
        return torch.where(s.to(z) > 0, z / s.to(z).clamp_min(1e-12), torch.zeros(()).to(z))

    return SVD(s.flatten()[None, None],
               vt=lambda x: hartley(x).flatten(-2),
               v=lambda z: hartley(z.unflatten(-1, (height, width))),
               ut=lambda y: inverse_s(hartley(operator.adjoint(y))).flatten(-2),
               u=lambda z: operator.forward(hartley(inverse_s(z.unflatten(-1, (height, width))))))
