"""Measurement operators: exact adjoints, right inverses, shapes, gradients and clear errors."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hrdis import operators
from hrdis.masks import random_pixel_mask
from hrdis.operators import (AveragePoolSR, BicubicSR, BlockCS, Blur, Identity, Inpainting, bicubic_upsample,
                             gaussian_kernel, is_linear, motion_kernel)

SIZE = 64

LINEAR = {
    "identity": lambda: Identity(),
    "inpainting": lambda: Inpainting(random_pixel_mask(SIZE, 0.5, seed=0)),
    "avgpool-sr2": lambda: AveragePoolSR(2),
    "avgpool-sr4": lambda: AveragePoolSR(4),
    "avgpool-sr8": lambda: AveragePoolSR(8),
    "bicubic-sr4": lambda: BicubicSR(4, SIZE),
    "cs10": lambda: BlockCS(0.10, seed=0),
    "cs25": lambda: BlockCS(0.25, seed=1),
    "blur-gauss": lambda: Blur(gaussian_kernel(15, 2.0)),
    "blur-motion": lambda: Blur(motion_kernel(15, 0.5, seed=0)),
}

# Operators that are onto: A A^+ y = y for every measurement y, not only for y = A x.
ONTO = ["identity", "avgpool-sr2", "avgpool-sr4", "avgpool-sr8", "bicubic-sr4", "cs10", "cs25"]


def randn(shape, seed, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("name", list(LINEAR))
def test_adjoint_identity(name, dtype, rtol):
    op = LINEAR[name]()
    x = randn((2, 3, SIZE, SIZE), 0, dtype)
    ax = op(x)
    y = randn(ax.shape, 1, dtype)
    lhs = (ax * y).sum().item()
    rhs = (x * op.adjoint(y)).sum().item()
    assert abs(lhs - rhs) <= rtol * max(abs(lhs), abs(rhs)), f"{name}: <Ax, y> = {lhs}, <x, A^T y> = {rhs}"


@pytest.mark.parametrize("name", ONTO)
def test_pinv_is_a_right_inverse(name):
    op = LINEAR[name]()
    y = randn(op(torch.zeros(2, 3, SIZE, SIZE)).shape, 2)
    assert torch.allclose(op(op.pinv(y)), y, atol=1e-4), name


@pytest.mark.parametrize("name", ONTO + ["inpainting"])
def test_pinv_is_moore_penrose(name):
    """A^+ y lies in the range of A^T: it has no component that A cannot see (A^+ A A^+ = A^+)."""
    op = LINEAR[name]()
    y = op(randn((2, 3, SIZE, SIZE), 3))
    x_hat = op.pinv(y)
    assert torch.allclose(op.pinv(op(x_hat)), x_hat, atol=1e-4), name


def test_inpainting_pinv_restores_observed_pixels_only():
    mask = random_pixel_mask(SIZE, 0.3, seed=1)
    op = Inpainting(mask)
    x = randn((2, 3, SIZE, SIZE), 4)
    x_hat = op.pinv(op(x))
    assert torch.equal(x_hat * mask, x * mask)
    assert torch.equal(x_hat * (1 - mask), torch.zeros_like(x))


def test_per_image_masks():
    masks = torch.cat([random_pixel_mask(16, 0.5, seed=s) for s in range(2)])
    y = Inpainting(masks)(torch.ones(2, 3, 16, 16))
    assert torch.equal(y[0, 0], masks[0, 0]) and torch.equal(y[1, 0], masks[1, 0])


@pytest.mark.parametrize("name", list(LINEAR))
def test_shapes_dtype_and_gradient(name):
    op = LINEAR[name]()
    x = randn((2, 3, SIZE, SIZE), 5).requires_grad_(True)
    y = op(x)
    assert y.dtype == torch.float32 and y.shape[0] == 2
    y.pow(2).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0
    y = y.detach()
    assert op.pinv(y).shape == x.shape and op.adjoint(y).shape == x.shape
    shown = op.measurement_image(y)
    assert shown.dim() == 4 and shown.shape[:2] == (2, 3) and shown.abs().max() <= 1
    assert is_linear(op) and op.to("cpu") is op


def test_measurement_shapes():
    x = torch.zeros(2, 3, SIZE, SIZE)
    assert AveragePoolSR(4)(x).shape == (2, 3, 16, 16)
    assert BicubicSR(4, SIZE)(x).shape == (2, 3, 16, 16)
    assert BlockCS(0.10)(x).shape == (2, 3, 102, 2, 2)
    assert BlockCS(0.25)(x).shape == (2, 3, 256, 2, 2)
    assert BicubicSR(2, (32, 64))(torch.zeros(1, 3, 32, 64)).shape == (1, 3, 16, 32)


def test_is_linear_reads_the_flag():
    class Squared(operators.Operator):
        linear = False

        def forward(self, x):
            return x**2

    assert not is_linear(Squared()) and is_linear(Identity()) and not is_linear(object())


def test_average_pool_pinv_is_nearest_upsampling():
    y = randn((1, 3, 8, 8), 6)
    assert torch.equal(AveragePoolSR(4).pinv(y), F.interpolate(y, scale_factor=4, mode="nearest"))


def test_bicubic_matches_pil_and_torch():
    op = BicubicSR(4, SIZE)
    assert torch.allclose(op.matrix_h.sum(1), torch.ones(SIZE // 4), atol=1e-5)
    x = randn((1, 3, SIZE, SIZE), 7)
    expected = F.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True)
    assert torch.allclose(op(x), expected, atol=1e-5)
    pil = Image.fromarray(x[0, 0].numpy(), mode="F").resize((SIZE // 4, SIZE // 4), Image.Resampling.BICUBIC)
    assert np.allclose(op(x)[0, 0].numpy(), np.asarray(pil), atol=1e-4)


def test_bicubic_upsample_is_a_clamped_interpolation():
    y = randn((2, 3, 8, 8), 8)
    up = bicubic_upsample(y, 4)
    assert up.shape == (2, 3, 32, 32) and up.abs().max() <= 1


def test_block_cs_matrix_has_orthonormal_rows_and_is_seeded():
    op = BlockCS(0.25, seed=3)
    assert op.phi.shape == (256, 1024)
    assert torch.allclose(op.phi @ op.phi.T, torch.eye(256), atol=1e-5)
    assert torch.equal(op.phi, BlockCS(0.25, seed=3).phi) and not torch.equal(op.phi, BlockCS(0.25, seed=4).phi)


def test_block_cs_measures_each_block_with_phi():
    op = BlockCS(0.10, block=8, seed=0)
    x = randn((1, 3, 16, 24), 9)
    y = op(x)
    patch = x[0, 2, 8:16, 16:24].reshape(-1)  # block row 1, block column 2 of channel 2
    assert torch.allclose(y[0, 2, :, 1, 2], op.phi @ patch, atol=1e-5)


def test_blur_is_a_centred_circular_convolution():
    kernel = torch.rand(5, 5, generator=torch.Generator().manual_seed(0))
    kernel /= kernel.sum()
    x = randn((1, 3, 16, 16), 10)
    direct = sum(kernel[i, j] * torch.roll(x, shifts=(i - 2, j - 2), dims=(-2, -1)) for i in range(5) for j in range(5))
    assert torch.allclose(Blur(kernel)(x), direct, atol=1e-5)
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1
    assert torch.allclose(Blur(delta)(x), x, atol=1e-6)


def test_blur_pinv_inverts_a_well_conditioned_kernel():
    kernel = torch.tensor([[0.0, 0.05, 0.0], [0.05, 0.8, 0.05], [0.0, 0.05, 0.0]])  # |K| >= 0.6 everywhere
    op = Blur(kernel)
    x = randn((2, 3, SIZE, SIZE), 11)
    assert torch.allclose(op.pinv(op(x)), x, atol=1e-4)


def test_blur_pinv_bounds_noise_amplification():
    op = Blur(gaussian_kernel(15, 3.0))
    noise = randn((1, 3, SIZE, SIZE), 12)
    amplified = op.pinv(noise).norm() / noise.norm()
    assert 1 < amplified <= 1 / op.pinv_tol


def test_solvers_start_a_blur_from_the_blurred_image_not_its_noise_amplifying_inverse():
    from hrdis import GaussianPrior, solve

    op = Blur(gaussian_kernel(15, 3.0))
    x = randn((1, 3, SIZE, SIZE), 14).clamp(-1, 1)
    y = op(x) + 0.05 * randn((1, 3, SIZE, SIZE), 15)
    assert torch.equal(op.initial_estimate(y), y)
    assert torch.equal(solve(y, op, GaussianPrior(), "hrdis", steps=1).init, y)
    assert torch.equal(Inpainting(random_pixel_mask(SIZE, 0.5, seed=0)).initial_estimate(y),
                       Inpainting(random_pixel_mask(SIZE, 0.5, seed=0)).pinv(y))  # elsewhere A^+ y


def test_a_61_px_blur_of_a_256_image_is_the_circular_convolution_and_caches_its_transfer_function():
    # Speed is measured by `hrdis perf`, not asserted here; this checks the FFT path is exact at the size
    # the speed matters for (a 61x61 kernel at 256 px), against circular padding + a direct convolution.
    kernel = gaussian_kernel(61, 3.0)
    op = Blur(kernel)
    x = randn((1, 3, 256, 256), 13)
    padded = torch.nn.functional.pad(x, (30, 30, 30, 30), mode="circular")
    weight = kernel.flip(0, 1).expand(3, 1, 61, 61)  # conv2d correlates: flip for a convolution
    direct = torch.nn.functional.conv2d(padded, weight, groups=3)
    assert torch.allclose(op(x), direct, atol=1e-5)
    op(x)
    assert len(op._transfer_cache) == 1


def test_kernels_are_normalised_seeded_and_centred():
    g = gaussian_kernel(15, 2.0)
    assert g.shape == (15, 15) and abs(g.sum().item() - 1) < 1e-5 and g.argmax().item() == 7 * 15 + 7
    m = motion_kernel(31, 0.5, seed=0)
    assert m.shape == (31, 31) and abs(m.sum().item() - 1) < 1e-5 and (m >= 0).all()
    assert torch.equal(m, motion_kernel(31, 0.5, seed=0)) and not torch.equal(m, motion_kernel(31, 0.5, seed=1))
    rows, cols = torch.meshgrid(torch.arange(31.0), torch.arange(31.0), indexing="ij")
    centre = ((m * rows).sum().item(), (m * cols).sum().item())
    assert abs(centre[0] - 15) < 4 and abs(centre[1] - 15) < 4
    assert (m > 1e-3).sum() > 10  # a streak, not a point
    assert motion_kernel(5, 1.0, seed=2).shape == (5, 5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by 4"):
        AveragePoolSR(4)(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="divisible by 32"):
        BlockCS(0.10)(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="rate"):
        BlockCS(0.0)
    with pytest.raises(ValueError, match="rate"):
        BlockCS(1.5)
    with pytest.raises(ValueError, match="image_size=32"):
        BicubicSR(4, 64)(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible by 3"):
        BicubicSR(3, 64)
    with pytest.raises(ValueError, match="does not fit"):
        Blur(gaussian_kernel(61, 3.0))(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="mask is 64x64"):
        Inpainting(random_pixel_mask(64, 0.5, seed=0))(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="only 0"):
        Inpainting(torch.full((1, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="batch dimension"):
        AveragePoolSR(2)(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="scale"):
        AveragePoolSR(0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(15, 0.0)
    with pytest.raises(ValueError, match="intensity"):
        motion_kernel(15, 1.5, seed=0)


def test_operators_are_modules_whose_tensors_move_with_to():
    from hrdis.nonlinear import NonlinearBlur

    class Scaled(operators.Operator):  # no super().__init__(), as operators are often written
        def __init__(self, weight):
            self.weight = weight

        def forward(self, x):
            return self.weight * x

    op = Scaled(torch.full((3, 1, 1), 2.0))
    assert isinstance(op, torch.nn.Module) and [n for n, _ in op.named_buffers()] == ["weight"]
    assert op.state_dict() == {}  # nothing to save: an operator is rebuilt from its task and seed
    assert op.to("meta") is op and op.weight.is_meta
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(Scaled(torch.full((3, 1, 1), 2.0)).to(torch.float64)(x), 2 * x)

    blur = NonlinearBlur(operators.gaussian_kernel(5, 1.0)).to(torch.float64)
    assert blur.kernel.dtype == torch.float64 and blur(x).dtype == torch.float64
    mask = Inpainting(torch.ones(1, 1, 8, 8)).to("meta")
    assert all(b.is_meta for b in mask.buffers()) and len(list(mask.buffers())) >= 1


def test_what_applies_follows_the_operators_structure_not_its_class():
    from hrdis import plausibility
    from hrdis.solvers import METHODS

    class Subsample(operators.Operator):  # a new super-resolution operator: every second pixel
        scale = 2

        def forward(self, x):
            return x[..., ::2, ::2]

        def pinv(self, y):
            return y.repeat_interleave(2, -2).repeat_interleave(2, -1)

    new = Subsample()
    assert operators.is_super_resolution(new) and METHODS["bicubic"].applies_to(new)
    assert METHODS["bicubic"].solver(new(torch.zeros(1, 3, 8, 8)), new).image.shape == (1, 3, 8, 8)
    kinds = {"sr2": new, "image": Blur(operators.gaussian_kernel(3, 1.0)), "inpaint": Inpainting(torch.ones(1, 1, 8, 8)),
             "sr4": AveragePoolSR(4), None: BlockCS(0.25)}
    assert {k: plausibility.operator_kind(op) for k, op in kinds.items()} == {k: k for k in kinds}
    assert not operators.is_super_resolution(BlockCS(0.25)) and not METHODS["bicubic"].applies_to(Identity())
