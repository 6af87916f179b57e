"""Batching: one solve over B images restores each exactly as B single solves at seeds seed + b."""

import pytest
import torch

from hrdis import GaussianPrior, load_prior, solve
from hrdis.operators import AveragePoolSR, Inpainting
from hrdis.randomness import SeededNoise, per_image_seeds
from hrdis.tasks import get_task


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
    noise = SeededNoise(4, 2).randn((2, 3, 4, 4))
    assert torch.equal(noise[1:], torch.randn((1, 3, 4, 4), generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("method", ["hrdis", "reddiff", "drddim", "dps", "ddim", "pigdm", "ddrm", "dmplug",
                                    "hrdis-blind"])
def test_batched_restarts_equal_restarts_one_after_another(method):
    """solve runs the restarts of one image as one batch; each restart is still the run its seed gives."""
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = get_task("blind-lowlight").make_operator(16, 0) if method == "hrdis-blind" else AveragePoolSR(2)
    y = measurements(op, 16, n=1)
    a = solve(y, op, prior, method, seed=[5], steps=8, restarts=3)
    b = solve(y, op, prior, method, seed=[5], steps=8, restarts=3, batch_restarts=False)
    assert torch.allclose(a.image, b.image, atol=1e-6, rtol=0)
    assert a.extras["restart_seeds"] == b.extras["restart_seeds"] == [[5], [1005], [2005]]
    assert a.extras["restart_residuals"][0] == pytest.approx(b.extras["restart_residuals"][0], abs=1e-6)
    assert a.extras["chosen_restart"] == b.extras["chosen_restart"] and a.nfe == b.nfe
