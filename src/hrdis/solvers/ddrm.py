"""DDRM: Denoising Diffusion Restoration Models (Kawar, Elad, Ermon & Song, NeurIPS 2022).

For a linear A = U diag(s) V^T and y = A x + sigma_y n, DDRM runs the diffusion in the spectral
coordinates of V, in the variance-exploding scaling x_bar_t = x_t / alpha_t = x_0 + l_t eps
(l_t = sigma_t / alpha_t). With x0_bar = V^T x0_hat, eps_bar = V^T eps_theta(x_t, t), the measurement
y_bar_i = (U^T y)_i / s_i and z ~ N(0, I), one step from l_t to l_s sets each coordinate i by
(paper Eq. 7-8, as in the official code):

    s_i = 0 (null space):            x0_bar_i + sqrt(1 - eta^2) l_s eps_bar_i + eta l_s z_i
    s_i > 0, l_s < sigma_y / s_i:    x0_bar_i + sqrt(1 - eta^2) l_s (y_bar_i - x0_bar_i) s_i / sigma_y + eta l_s z_i
    s_i > 0, l_s >= sigma_y / s_i:   eta_b y_bar_i + (1 - eta_b) x0_bar_i + sqrt(l_s^2 - eta_b^2 sigma_y^2 / s_i^2) z_i

then x_s = alpha_s V x_bar_s. It starts from x_bar_T = y_bar + sqrt(l_T^2 - sigma_y^2/s^2) z on the
observed coordinates (l_T z elsewhere) and ends at l = 0. No gradients: one network evaluation a step.

``svd_of(operator, size)`` gives the SVD of the operators here, per channel (every operator acts on
each channel alike): inpainting (V = I, s = the mask), average-pooling and bicubic super-resolution
(separable: A = D_h (x) D_w, so the SVD is the Kronecker product of the 1-D matrices' SVDs), block
compressed sensing (phi has orthonormal rows: U = I, s = 1, V^T = phi completed to an orthonormal basis
by QR), circular blur (V^T = the 2-D Hartley transform, s = |K|, see ``_circulant_svd``) and denoising
(identity). An operator can supply its own with a ``svd(size)`` method.

Differences from the official code: with sigma_y = 0 the last step (l_s = 0) takes the third case
(>=), so the observed coordinates end exactly at y_bar, as the paper's p(x_0 | x_1, y); the official
code's strict inequality leaves them at the network's last x0 estimate. sigma_y is in the units of
y ([-1, 1] images; the HRDIS reference code doubles a [0, 1] value).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..operators import AveragePoolSR, BicubicSR, BlockCS, Blur, Identity, Inpainting, Operator
from ..priors import Prior
from .base import BatchNoise, SolveResult, check_inputs, check_unit_interval, psnr_tensor
from .base import randn as batch_randn
from ._common import check_grid, check_non_negative, image_shape

SVD_OPERATORS = (Identity, Inpainting, AveragePoolSR, BicubicSR, BlockCS, Blur)  # those svd_of knows
SVD_OPERATORS_TEXT = "inpainting, SR, CS, blur, denoising"
NO_SVD = f"DDRM needs an operator with an SVD ({SVD_OPERATORS_TEXT})"


def has_svd(operator: Operator) -> bool:
    return callable(getattr(operator, "svd", None)) or isinstance(operator, SVD_OPERATORS)


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


def svd_of(operator: Operator, size: tuple[int, int]) -> SVD:
    """The SVD of ``operator`` acting on H x W images (``size`` = (H, W)); ValueError if it has none here."""
    height, width = size
    if callable(getattr(operator, "svd", None)):
        return operator.svd(size)
    if isinstance(operator, Identity):
        return _diagonal_svd(torch.ones(1, 1, height, width))
    if isinstance(operator, Inpainting):
        return _diagonal_svd(operator.mask)
    if isinstance(operator, AveragePoolSR):
        return _separable_svd(_average_matrix(height, operator.scale), _average_matrix(width, operator.scale))
    if isinstance(operator, BicubicSR):
        if tuple(size) != operator.image_size:
            raise ValueError(f"BicubicSR was built for {operator.image_size} images, not {tuple(size)}")
        return _separable_svd(operator.matrix_h.double(), operator.matrix_w.double())
    if isinstance(operator, BlockCS):
        return _block_svd(operator.phi.double(), operator.block, size)
    if isinstance(operator, Blur):
        return _circulant_svd(operator, size)
    raise ValueError(f"{NO_SVD}, not {type(operator).__name__}")


def _diagonal_svd(mask: Tensor) -> SVD:
    """A = diag(mask): U = V = I, s = the 0/1 mask. The mask may differ per image (B, 1, H, W)."""
    h, w = mask.shape[-2:]
    s = mask.float().flatten(-2)  # (Bm, 1, N)

    def ut(y):
        return y.flatten(-2) * s.to(y)  # holes carry no measurement, whatever y holds there

    return SVD(s, vt=lambda x: x.flatten(-2), v=lambda z: z.unflatten(-1, (h, w)), ut=ut,
               u=lambda z: z.unflatten(-1, (h, w)) * s.to(z).unflatten(-1, (h, w)))


def _average_matrix(n: int, scale: int) -> Tensor:
    """The (n / scale, n) matrix of 1-D average pooling."""
    if n % scale:
        raise ValueError(f"a size of {n} cannot be average-pooled by {scale}")
    row = torch.full((1, scale), 1.0 / scale, dtype=torch.float64)
    return torch.kron(torch.eye(n // scale, dtype=torch.float64), row)


def _separable_svd(d_h: Tensor, d_w: Tensor) -> SVD:
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


def _block_svd(phi: Tensor, block: int, size: tuple[int, int]) -> SVD:
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


def _hartley(x: Tensor) -> Tensor:
    """The orthonormal 2-D discrete Hartley transform, sum_xy x cas(2 pi (k x / H + l y / W)) / sqrt(HW).

    Real, orthogonal and its own inverse; cas = cos + sin, hence Re(F x) - Im(F x) with F the unitary DFT."""
    spectrum = torch.fft.fft2(x.float(), norm="ortho")
    return (spectrum.real - spectrum.imag).to(x.dtype)


def _circulant_svd(operator: Blur, size: tuple[int, int]) -> SVD:
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
               vt=lambda x: _hartley(x).flatten(-2),
               v=lambda z: _hartley(z.unflatten(-1, (height, width))),
               ut=lambda y: inverse_s(_hartley(operator.adjoint(y))).flatten(-2),
               u=lambda z: operator.forward(_hartley(inverse_s(z.unflatten(-1, (height, width))))))


def ddrm_step(svd: SVD, x0: Tensor, eps: Tensor, y_bar: Tensor, level_next: float, eta: float, eta_b: float,
              sigma_y: float, noise: Tensor) -> Tensor:
    """x_bar at the next level l_s = ``level_next`` in spectral coordinates (the three cases above)."""
    s = svd.singulars.to(x0)
    x0_bar, eps_bar = svd.vt(x0), svd.vt(eps)
    observed = s > 0
    null_case = x0_bar + level_next * ((1 - eta**2) ** 0.5 * eps_bar + eta * noise)
    # sigma_y / s_i: the measurement's own noise level on coordinate i (inf on the null space)
    y_level = sigma_y / s.clamp_min(1e-12)
    less_noisy = x0_bar + level_next * ((1 - eta**2) ** 0.5 * (y_bar - x0_bar) / y_level.clamp_min(1e-12) + eta * noise)
    noisier = (eta_b * y_bar + (1 - eta_b) * x0_bar
               + (level_next**2 - eta_b**2 * y_level**2).clamp_min(0).sqrt() * noise)
    below_y = level_next < y_level
    return torch.where(~observed, null_case, torch.where(below_y, less_noisy, noisier))


def ddrm(
    y: torch.Tensor,
    operator: Operator,
    prior: Prior,
    *,
    steps: int = 100,
    eta: float = 0.85,
    eta_b: float = 1.0,
    sigma_y: float = 0.0,
    seed: int | list[int] = 0,
    reference: torch.Tensor | None = None,
    progress: bool = False,
) -> SolveResult:
    """Sample x given y = A x + sigma_y n with DDRM (linear operators with an SVD, see ``svd_of``).

    Args:
        steps: diffusion steps (20 in the paper, 100 as the HRDIS paper ran it), one network evaluation each.
        eta: stochasticity on the null space and on coordinates less noisy than y (0.85).
        eta_b: how far coordinates noisier than y move onto the measurement (1.0 = onto it).
        sigma_y: the measurement noise standard deviation, in units of y.
        seed: seeds x_T and the noise of every step.
        reference: the ground truth, only to record the PSNR of x0_hat per step.
    """
    check_inputs(y, operator, prior, steps)
    check_grid(steps, prior.schedule)
    check_unit_interval("eta", eta)
    check_unit_interval("eta_b", eta_b)
    check_non_negative("sigma_y", sigma_y)
    shape = image_shape(y, operator)
    svd = svd_of(operator, tuple(shape[-2:]))
    start = time.perf_counter()
    sched = prior.schedule
    generator = BatchNoise(seed, y.shape[0])

    def randn():
        return batch_randn(shape[:2] + svd.singulars.shape[-1:], generator, y.device)

    s = svd.singulars.to(y)
    observed = s > 0
    y_bar = torch.where(observed, svd.ut(y) / s.clamp_min(1e-12), torch.zeros(()).to(y))  # Sigma^+ U^T y
    timesteps = sched.timesteps(steps)
    levels = [(sched.sigma(t) / sched.alpha(t)).item() for t in timesteps] + [0.0]  # l_t, ending at l = 0
    alphas = [sched.alpha(t).item() for t in timesteps] + [1.0]

    # p(x_T | y): the measurement plus the noise it lacks on observed coordinates, pure noise elsewhere
    y_level = sigma_y / s.clamp_min(1e-12)
    fits = observed & (y_level < levels[0])
    x_bar = torch.where(fits, y_bar, 0.0) + torch.where(fits, (levels[0] ** 2 - y_level**2).clamp_min(0).sqrt(),
                                                          levels[0]) * randn()
    x = alphas[0] * svd.v(x_bar)
    x_init = x.clone()

    history = []
    with torch.no_grad():
        for i, t in enumerate(tqdm(timesteps, desc="ddrm", disable=not progress, leave=False)):
            eps = prior.eps(x, t)
            x0 = (x - sched.sigma(t) * eps) / sched.alpha(t)
            x_bar = ddrm_step(svd, x0, eps, y_bar, levels[i + 1], eta, eta_b, sigma_y, randn())
            x = alphas[i + 1] * svd.v(x_bar)
            record = {"step": i, "t": t}
            if reference is not None:
                record["psnr"] = psnr_tensor(x0, reference)
            history.append(record)

    return SolveResult(image=x.clamp(-1, 1), init=x_init, history=history, nfe=steps, backprop=False, method="ddrm",
                       params=dict(steps=steps, eta=eta, eta_b=eta_b, sigma_y=sigma_y, seed=seed),
                       seconds=time.perf_counter() - start)
