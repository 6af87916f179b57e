import pytest
import torch

from hrdis.priors import save_prior
from hrdis.schedule import VPSchedule
from hrdis.unet import ADMConfig, ADMUNet

torch.set_num_threads(1)  # a training job may share the machine

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
