"""Measurement noise: seeded determinism, the right statistics, and the spec strings."""

import pytest
import torch

from hrdis.noise import GaussianNoise, NoNoise, PoissonNoise, SpeckleNoise, parse_noise

MODELS = [GaussianNoise(0.05), PoissonNoise(1.0), SpeckleNoise(0.1)]


def image(seed=0):
    return torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


@pytest.mark.parametrize("noise", MODELS, ids=lambda n: n.spec())
def test_seeded_and_leaves_the_input_alone(noise):
    y = image()
    original = y.clone()
    a = noise(y, seed=0)
    assert a.shape == y.shape and a.dtype == y.dtype
    assert torch.equal(a, noise(y, seed=0))
    assert not torch.equal(a, noise(y, seed=1))
    assert not torch.equal(a, y) and torch.equal(y, original)


def test_no_noise_is_a_copy():
    y = image()
    out = NoNoise()(y, seed=0)
    assert torch.equal(out, y) and out is not y


def test_gaussian_std_is_sigma():
    y = torch.zeros(4, 3, 64, 64)
    residual = GaussianNoise(0.1)(y, seed=0) - y
    assert abs(residual.std().item() - 0.1) < 0.002 and abs(residual.mean().item()) < 0.002


def test_poisson_statistics():
    """Counts have variance = mean: for intensity I the [-1, 1] value has std 2 sqrt(I / (255 level))."""
    level, intensity = 0.5, 0.5
    y = torch.full((4, 3, 64, 64), 2 * intensity - 1)
    noisy = PoissonNoise(level)(y, seed=0)
    expected_std = 2 * (intensity / (255 * level)) ** 0.5
    assert abs(noisy.std().item() - expected_std) < 0.05 * expected_std
    assert abs(noisy.mean().item() - y[0, 0, 0, 0].item()) < 0.01
    assert noisy.abs().max() <= 1


def test_speckle_is_multiplicative():
    y = torch.full((4, 3, 64, 64), -1.0)  # zero intensity: nothing to scale
    assert torch.equal(SpeckleNoise(0.2)(y, seed=0), y)
    bright = torch.zeros(4, 3, 64, 64)  # intensity 0.5
    residual = SpeckleNoise(0.2)(bright, seed=0) - bright
    assert abs(residual.std().item() - 2 * 0.5 * 0.2) < 0.005


def test_intensity_noise_refuses_compressed_sensing_measurements():
    with pytest.raises(ValueError, match="gaussian"):
        PoissonNoise(1.0)(torch.zeros(1, 3, 102, 2, 2), seed=0)


@pytest.mark.parametrize("spec, expected", [
    (None, NoNoise()), ("", NoNoise()), ("none", NoNoise()), (" None ", NoNoise()),
    ("gaussian:0.05", GaussianNoise(0.05)), ("Gaussian:0.1", GaussianNoise(0.1)),
    ("poisson:1.0", PoissonNoise(1.0)), ("speckle:0.1", SpeckleNoise(0.1)),
])
def test_parse_good_specs(spec, expected):
    noise = parse_noise(spec)
    assert noise == expected
    assert parse_noise(noise.spec()) == noise


@pytest.mark.parametrize("spec", ["laplace:3", "gaussian", "gaussian:", "gaussian:abc", "gaussian:-0.1",
                                  "poisson:0", "speckle:-1", "gaussian:nan"])
def test_parse_bad_specs(spec):
    with pytest.raises(ValueError, match="gaussian|must be"):
        parse_noise(spec)


def test_unknown_spec_lists_the_valid_forms():
    with pytest.raises(ValueError, match="none, gaussian:SIGMA, poisson:LEVEL or speckle:SIGMA"):
        parse_noise("laplace:3")


def test_negative_sigma_in_constructors():
    with pytest.raises(ValueError, match="non-negative"):
        GaussianNoise(-0.1)
    with pytest.raises(ValueError, match="positive"):
        PoissonNoise(-1.0)
