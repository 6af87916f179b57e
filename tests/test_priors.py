"""Priors: guided-diffusion layout parity on the shared ADM fixtures, prior folders, and their errors."""

import json
from pathlib import Path

import pytest
import torch

from hrdis import GaussianPrior, VPSchedule, load_prior
from hrdis.priors import save_prior
from hrdis.unet import ADMConfig, ADMUNet

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "adm"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/adm is not beside the repo")


@needs_fixtures
def test_adm_fixture_parity():
    """Strict-key load of the reference state dict reproduces guided-diffusion's output."""
    prior = load_prior(FIXTURES / "adm_small64_state_dict.pt", config=FIXTURES / "adm_small64_config.json")
    io = torch.load(FIXTURES / "adm_small64_io.pt", weights_only=True)
    with torch.no_grad():
        out = prior.network(io["x"], io["t"])
    assert out.shape == io["out"].shape == (2, 6, 64, 64)
    assert (out - io["out"]).abs().max().item() < 1e-4
    assert torch.equal(prior.eps(io["x"], io["t"]), out[:, :3])  # learn_sigma: eps is the first 3 channels


@needs_fixtures
@pytest.mark.parametrize("name", ["ffhq_10m_keys.json", "256x256_diffusion_uncond_keys.json"])
def test_public_checkpoint_layouts(name):
    """Built from their configs, our UNets have exactly the public checkpoints' keys, shapes and sizes."""
    listing = json.loads((FIXTURES / name).read_text())
    with torch.device("meta"):
        unet = ADMUNet(ADMConfig.from_dict(listing["config"]))
    state = unet.state_dict()
    assert sorted(state) == sorted(listing["keys"])
    assert all(list(state[k].shape) == shape for k, shape in listing["keys"].items())
    assert sum(p.numel() for p in unet.parameters()) == listing["num_parameters"]


@needs_fixtures
def test_checkpoint_with_wrong_keys_names_them(tmp_path):
    state = torch.load(FIXTURES / "adm_small64_state_dict.pt", weights_only=True)
    state.pop("out.2.bias")
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"missing keys \(e.g. out.2.bias\).*unexpected keys \(e.g. extra.weight\)"):
        load_prior(bad, config=FIXTURES / "adm_small64_config.json")


@needs_fixtures
def test_checkpoint_with_wrong_config_names_shapes(tmp_path):
    cfg = json.loads((FIXTURES / "adm_small64_config.json").read_text())
    cfg["num_channels"] = 64
    with pytest.raises(ValueError, match="shape mismatches"):
        load_prior(FIXTURES / "adm_small64_state_dict.pt", config=cfg)


def test_corrupt_and_missing_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_prior(junk, config={"image_size": 32})
    with pytest.raises(FileNotFoundError, match="prior not found"):
        load_prior(tmp_path / "nothing.pt")
    with pytest.raises(ValueError, match="needs its configuration"):
        torch.save({"a": torch.zeros(1)}, tmp_path / "ok.pt")
        load_prior(tmp_path / "ok.pt")


def test_prior_folder_round_trip(tiny_prior_dir, tmp_path):
    prior = load_prior(tiny_prior_dir)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 900])
    out = prior.eps(x, t)
    assert out.shape == (2, 3, 32, 32) and out.abs().sum() > 0
    again = load_prior(save_prior(tmp_path / "copy", prior.unet, VPSchedule()))
    assert torch.equal(again.eps(x, t), out)


def test_sharded_prior_folder_round_trips_and_switches_layout(tiny_prior_dir, tmp_path):
    """Weights split over shards of at most the given size load to the same network; re-exporting in the other
    layout leaves no file of the first behind (the loader would read it)."""
    prior = load_prior(tiny_prior_dir)
    sizes = [t.numel() * 4 for t in prior.unet.state_dict().values()]
    limit = max(sizes)
    folder = save_prior(tmp_path / "sharded", prior.unet, VPSchedule(), max_shard_bytes=limit)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(shards) > 1 and not (folder / "model.safetensors").exists()
    assert sorted(set(index["weight_map"].values())) == [f.name for f in shards]
    assert index["metadata"]["total_size"] == sum(sizes)
    from safetensors.torch import load_file
    assert all(sum(t.numel() * 4 for t in load_file(str(f)).values()) <= limit for f in shards)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 900])
    assert torch.equal(load_prior(folder).eps(x, t), prior.eps(x, t))
    assert load_prior(folder).weights_id() == prior.weights_id()

    save_prior(folder, prior.unet, VPSchedule())
    assert sorted(f.name for f in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert torch.equal(load_prior(folder).eps(x, t), prior.eps(x, t))


def test_missing_or_mismatched_shard_is_a_clear_error(tiny_prior_dir, tmp_path):
    prior = load_prior(tiny_prior_dir)
    folder = save_prior(tmp_path / "sharded", prior.unet, VPSchedule(), max_shard_bytes=20_000)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    shards[0].rename(tmp_path / "aside.safetensors")
    with pytest.raises(FileNotFoundError, match=f"lacks {shards[0].name}.*copy every shard"):
        load_prior(folder)
    (tmp_path / "aside.safetensors").rename(shards[0])
    shards[1].write_bytes(shards[0].read_bytes())  # a shard holding another shard's tensors
    with pytest.raises(ValueError, match="does not hold the tensors"):
        load_prior(folder)
    (folder / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(ValueError, match="not a shard index"):
        load_prior(folder)


def test_corrupt_prior_folder(tiny_prior_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((Path(tiny_prior_dir) / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="safetensors"):
        load_prior(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_prior(broken)


def test_gaussian_prior_noise_prediction_is_the_mmse_estimate():
    """E[eps | x_t] by Monte Carlo matches the closed form at a few timesteps."""
    prior = GaussianPrior(mean=0.3, std=0.5)
    g = torch.Generator().manual_seed(0)
    for t in (50, 500, 950):
        a, s = prior.schedule.alpha(t), prior.schedule.sigma(t)
        x0 = 0.3 + 0.5 * torch.randn(400_000, generator=g)
        eps = torch.randn(400_000, generator=g)
        x_t = a * x0 + s * eps
        pred = prior.eps(x_t.view(-1, 1, 1, 1), t).flatten()
        # The MMSE estimator's error is orthogonal to any function of x_t: check against x_t itself.
        assert abs(((eps - pred) * x_t).mean().item()) < 5e-3
        assert ((eps - pred) ** 2).mean() < ((eps - 0) ** 2).mean()


def test_schedule_matches_ddpm():
    sched = VPSchedule()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(sched.alpha_bar, torch.cumprod(1 - betas, 0))
    assert abs(sched.alpha(0).item() ** 2 + sched.sigma(0).item() ** 2 - 1) < 1e-6
    assert sched.timesteps(5) == [999, 749, 500, 250, 0]
    with pytest.raises(ValueError, match="positive"):
        sched.timesteps(0)


def test_v_prediction_gives_the_noise(tiny_prior_dir):
    """A v-network's output v = alpha_t eps - sigma_t x_0 turns into exactly eps (and Tweedie gives x_0)."""
    prior = load_prior(tiny_prior_dir)
    prior.prediction = "v"
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.randn(2, 3, 32, 32, generator=g)
    t = torch.tensor([5, 990])
    a, s = prior.schedule.alpha(t).view(-1, 1, 1, 1), prior.schedule.sigma(t).view(-1, 1, 1, 1)
    prior._forward = lambda x_t, tt: a * eps - s * x0  # a perfect v-network for this (x0, eps)
    x_t = a * x0 + s * eps
    assert torch.allclose(prior.eps(x_t, t), eps, atol=1e-5)
    assert torch.allclose(prior.x0(x_t, t), x0, atol=1e-3)
