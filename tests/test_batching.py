"""Batching: one solve over B images restores each exactly as B single solves at seeds seed + b."""

import pytest
import torch

from hrdis import GaussianPrior, load_prior, solve
from hrdis.operators import AveragePoolSR, Inpainting
from hrdis.solvers.base import BatchNoise, per_image_seeds


def measurements(op, size, n=3):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return op(x)


@pytest.mark.parametrize("method", ["hrdis", "reddiff", "drddim", "dps", "ddim", "pigdm", "ddrm", "dmplug"])
def test_batch_equals_single_solves_gaussian_prior(method):
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = AveragePoolSR(2)
    y = measurements(op, 16)
    batch = solve(y, op, prior, method, seed=5, steps=12).image
    singles = torch.cat([solve(y[b:b + 1], op, prior, method, seed=5 + b, steps=12).image for b in range(3)])
    assert torch.allclose(batch, singles, atol=1e-6, rtol=0), (batch - singles).abs().max()
    if method == "hrdis":
        assert torch.equal(batch, singles)
        listed = solve(y, op, prior, method, seed=[5, 6, 7], steps=12).image
        assert torch.equal(listed, batch)


def test_batch_equals_single_solves_unet_prior(tiny_prior_dir):
    prior = load_prior(tiny_prior_dir)
    mask = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    op = Inpainting(mask)
    y = measurements(op, 32)
    batch = solve(y, op, prior, "hrdis", seed=5, steps=6).image
    singles = torch.cat([solve(y[b:b + 1], op, prior, "hrdis", seed=5 + b, steps=6).image for b in range(3)])
    assert (batch - singles).abs().max().item() < 1e-4  # batched convolutions may round differently


def test_per_image_seeds():
    assert per_image_seeds(5, 3) == [5, 6, 7] and per_image_seeds([1, 9], 2) == [1, 9]
    with pytest.raises(ValueError, match="one integer per image"):
        per_image_seeds([1, 2], 3)
    noise = BatchNoise(4, 2).randn((2, 3, 4, 4))
    assert torch.equal(noise[1:], torch.randn((1, 3, 4, 4), generator=torch.Generator().manual_seed(5)))
