"""Public checkpoint formats: ADM config inference from keys/shapes, presets, diffusers folders."""

import json
from pathlib import Path

import pytest
import torch

from hrdis import load_prior
from hrdis.priors import ADM_PRESETS, adm_config_for, infer_adm_config
from hrdis.unet import ADMConfig, ADMUNet

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "adm"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/adm is not beside the repo")
ARCH = ("num_channels", "num_res_blocks", "attention_resolutions", "channel_mult", "learn_sigma",
        "use_scale_shift_norm", "resblock_updown")


@needs_fixtures
@pytest.mark.parametrize("name", ["ffhq_10m", "256x256_diffusion_uncond"])
def test_config_inferred_from_public_key_listings(name):
    """The key listing alone (no weights allocated) gives the public checkpoint's configuration."""
    listing = json.loads((FIXTURES / f"{name}_keys.json").read_text())
    cfg, notes = adm_config_for(listing["keys"])  # no config, no telling file name
    expected = listing["config"]
    assert {k: getattr(cfg, k) for k in ARCH} == {k: expected[k] for k in ARCH}
    assert cfg.image_size == 256 and cfg.num_head_channels == 64
    assert any("image_size" in n for n in notes) and any("heads" in n for n in notes)
    # the file name selects the preset, which matches the fixture's config exactly
    cfg2, notes2 = adm_config_for(listing["keys"], path=f"/models/{name}.pt")
    assert {k: getattr(cfg2, k) for k in expected if k != "class_cond"} == {
        k: v for k, v in expected.items() if k != "class_cond"}
    assert notes2 == [f"configuration from the preset {name!r} (matched the file name)"]
    assert adm_config_for(listing["keys"], config=name)[0] == cfg2
    assert ADMConfig.from_dict(ADM_PRESETS[name]) == cfg2


@pytest.mark.parametrize("cfg", [
    ADMConfig(image_size=32, num_channels=32, num_res_blocks=2, attention_resolutions=[16, 8], channel_mult=[1, 2, 3],
              learn_sigma=False, use_scale_shift_norm=False, resblock_updown=False),
    ADMConfig(image_size=64, num_channels=64, num_res_blocks=1, attention_resolutions=[8], channel_mult=[1, 2, 2, 4],
              num_head_channels=64, learn_sigma=True, resblock_updown=True),
])
def test_inference_round_trips_other_architectures(cfg):
    with torch.device("meta"):
        state = ADMUNet(cfg).state_dict()
    inferred, _ = adm_config_for(state, {"image_size": cfg.image_size})
    assert {k: getattr(inferred, k) for k in ARCH} == {k: getattr(cfg, k) for k in ARCH}


@needs_fixtures
def test_small64_loads_with_inferred_config():
    """Only image_size (and the head size, which shapes cannot tell) given: reproduces the reference output."""
    prior = load_prior(FIXTURES / "adm_small64_state_dict.pt", config={"image_size": 64, "num_head_channels": 16})
    reference = json.loads((FIXTURES / "adm_small64_config.json").read_text())
    assert {k: getattr(prior.unet.config, k) for k in ARCH} == {k: reference[k] for k in ARCH}
    io = torch.load(FIXTURES / "adm_small64_io.pt", weights_only=True)
    with torch.no_grad():
        assert (prior.network(io["x"], io["t"]) - io["out"]).abs().max().item() < 1e-4
    # with nothing given it still loads (image size and heads assumed, and said so)
    assumed = load_prior(FIXTURES / "adm_small64_state_dict.pt")
    assert assumed.image_size == 256 and len(assumed.meta["notes"]) == 2


def test_uninferable_state_dict_without_config(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "ok.pt")
    with pytest.raises(ValueError, match="needs its configuration.*could not be inferred"):
        load_prior(tmp_path / "ok.pt")
    assert isinstance(infer_adm_config, object)


def test_diffusers_folder_loads_offline(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                  block_out_channels=(32, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                  up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8)
    model.save_pretrained(tmp_path / "pipe" / "unet")
    (tmp_path / "pipe" / "scheduler").mkdir()
    (tmp_path / "pipe" / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDPMScheduler", "beta_start": 0.0002, "beta_end": 0.03, "num_train_timesteps": 500,
         "beta_schedule": "linear", "prediction_type": "epsilon"}))
    prior = load_prior(tmp_path / "pipe")  # the pipeline folder: unet/ + scheduler/
    assert prior.image_size == 16 and prior.schedule.num_timesteps == 500 and prior.schedule.beta_end == 0.03
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 400])
    with torch.no_grad():
        assert torch.allclose(prior.eps(x, t), model(x, t).sample, atol=1e-6)
    model.save_pretrained(tmp_path / "alone")
    plain = load_prior(tmp_path / "alone")  # the model folder alone: default schedule, noted
    assert plain.schedule.num_timesteps == 1000 and "schedule" in plain.meta["notes"][0]
