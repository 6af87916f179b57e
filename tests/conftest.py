import pytest
import torch

from hrdis import GaussianPrior, operators, solve
from hrdis.masks import random_pixel_mask
from hrdis.priors import save_prior
from hrdis.schedule import VPSchedule
from hrdis.unet import ADMConfig, ADMUNet

torch.set_num_threads(1)  # a training job may share the machine



def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="an accelerator (e.g. cuda) for tests/test_device.py to compare with the CPU; cpu skips them")


@pytest.fixture(scope="session")
def device(request):
    return torch.device(request.config.getoption("--device"))


TINY_CONFIG = ADMConfig(image_size=32, num_channels=32, num_res_blocks=1, attention_resolutions=[8],
                        channel_mult=[1, 2], num_head_channels=32, use_scale_shift_norm=True, resblock_updown=True)


@pytest.fixture(scope="session")
def tiny_prior_dir(tmp_path_factory):
    """A random-weight 32x32 ADM prior saved as a prior folder (stands in for trained weights)."""
    torch.manual_seed(0)
    unet = ADMUNet(TINY_CONFIG)
    for p in unet.parameters():  # zero-initialised layers would make the network a constant
        torch.nn.init.normal_(p, std=0.02)
    return save_prior(tmp_path_factory.mktemp("prior") / "tiny", unet, VPSchedule(), {"note": "random test weights"})


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """Three 32x32 CelebA-style numbered faces (000001.png ...), rotated copies of the example image."""
    from pathlib import Path

    from PIL import Image

    example = Path(__file__).resolve().parents[1] / "examples" / "astronaut64.png"
    d = tmp_path_factory.mktemp("imgs")
    im = Image.open(example).convert("RGB")
    for i in range(3):
        im.rotate(10 * i).resize((32, 32)).save(d / f"{i + 1:06d}.png")
    return d


# The solver tests' Gaussian problems. With x_0 ~ N(m, s^2 I) and a noiseless linear y = A x, the posterior
# mean is m + A^+ (y - A m) and the posterior spreads by s along A's null space. Each solve runs DRAWS copies
# of y (one seed per copy), so one call gives many draws.
PRIOR_STD = 0.1
DRAWS = 16
LINEAR_CASES = {
    "inpaint": lambda: operators.Inpainting(random_pixel_mask(16, 0.5, seed=3)),
    "sr2": lambda: operators.AveragePoolSR(2),
}


@pytest.fixture(scope="session")
def rough_prior():
    """N(m, 0.1^2 I) at 16 px with a rough mean m, uniform in [-0.5, 0.5]."""
    g = torch.Generator().manual_seed(0)
    return GaussianPrior(mean=torch.rand((1, 3, 16, 16), generator=g) - 0.5, std=PRIOR_STD)


@pytest.fixture(scope="session")
def problems(rough_prior):
    """Per case of LINEAR_CASES: operator, measurement of a prior draw, and the posterior mean."""
    g = torch.Generator().manual_seed(1)
    x = (rough_prior.mean + PRIOR_STD * torch.randn(rough_prior.mean.shape, generator=g)).clamp(-1, 1)
    out = {}
    for case, make in LINEAR_CASES.items():
        op = make()
        y = op(x)
        out[case] = (op, y, rough_prior.mean + op.pinv(y - op(rough_prior.mean)))
    return out


def cached_draws(prior, problems, settings):
    """``get(method, case)``: that method's DRAWS-copy solve of the case, at ``settings[method]``, run once."""
    cache = {}

    def get(method, case):
        if (method, case) not in cache:
            op, y, _ = problems[case]
            cache[method, case] = solve(y.repeat(DRAWS, 1, 1, 1), op, prior, method, seed=0, **settings[method])
        return cache[method, case]
    return get


class Squared(operators.Operator):
    """A nonlinear operator, y = x^2 (with A^+ = sqrt, only so check_inputs can read its shape)."""

    linear, name = False, "squared"

    def forward(self, x):
        return x**2

    def pinv(self, y):
        return y.clamp_min(0).sqrt()
