"""Parity with reference code: every fixture in every ../shared/fixtures/parity* folder replayed through
hrdis (scripts/parity.py), within the tolerance its README states: the HRDIS paper's code (and its RED-diff,
DDIM, DDRM, PiGDM, DPS) through the official variants, the DPS, DMPlug and DAPS authors' code through the
authors' variants. Skipped when ../shared is not beside the checkout."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from hrdis import GaussianPrior, solve
from hrdis.operators import AveragePoolSR, Inpainting
from hrdis.randomness import ReplayNoise, SeededNoise

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "parity").is_dir(),
                                    reason="../shared/fixtures/parity is not beside the repo")


def load_parity():
    spec = importlib.util.spec_from_file_location("parity", ROOT / "scripts" / "parity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["parity"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def fixture_files():
    """folder/name of every fixture in every parity* folder."""
    if not FIXTURES.is_dir():
        return []
    return [f"{folder.name}/{p.name}" for folder in sorted(FIXTURES.glob("parity*")) if folder.is_dir()
            for p in sorted(folder.glob("*.pt")) if not p.name.startswith("noise_bank")]


@pytest.fixture(scope="module")
def parity():
    return load_parity()


@pytest.fixture(scope="module")
def prior_cache():
    return {}


@needs_fixtures
@pytest.mark.parametrize("name", fixture_files())
def test_replay_reproduces_the_reference_run(parity, prior_cache, name):
    torch.set_num_threads(1)
    c = parity.replay(FIXTURES / name, prior_cache)
    assert c.ok, (f"{name}: result max {c.result_max:.2e} p99.9 {c.result_p999:.2e} mean {c.result_mean:.2e}; "
                  f"trajectory max {c.traj_max:.2e} p99.9 {c.traj_p999:.2e} mean {c.traj_mean:.2e}")


def test_parity_script_refuses_what_it_cannot_replay(parity, tmp_path, capsys):
    assert parity.main([str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("parity: ") and "\n" not in err and "no such file" in err
    with pytest.raises(parity.FixtureError, match="no hrdis method"):
        parity.method_and_params({"algo": {"name": "mcg2"}, "exp": {"num_steps": 5},
                                  "diffusion": {"num_diffusion_timesteps": 1000}})


def test_tolerance_follows_the_readme(parity):
    assert parity.within_tolerance(True, 9e-6, 1e-6, 1e-7) and not parity.within_tolerance(True, 2e-5, 1e-6, 1e-7)
    assert parity.within_tolerance(False, 5e-3, 5e-5, 5e-6)  # reordered arithmetic: the percentile criterion
    assert not parity.within_tolerance(False, 5e-3, 2e-4, 5e-6) and not parity.within_tolerance(False, 2e-2, 1e-5, 1e-6)


# --------------------------------------------------------------------------------------------------
# Injected randomness


@pytest.mark.parametrize("variant", ["default", "official"])
@pytest.mark.parametrize("method", ["hrdis", "reddiff", "dps", "ddim", "pigdm", "ddrm", "dmplug"])
def test_replaying_the_seeded_draws_reproduces_the_seeded_solve(method, variant):
    """The default randomness is per-image seeded noise; recording what it hands out and replaying it by
    role gives the same solve, bit for bit (in the official variant too, whose DDRM draws per case and,
    under noise, some of those draws empty)."""
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = AveragePoolSR(2)
    y = op(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)

    class Recorder(SeededNoise):
        def __init__(self, *a):
            super().__init__(*a)
            self.draws = []

        def randn(self, shape, device=None, role="step"):
            value = super().randn(shape, device, role)
            self.draws.append((role, value.clone()))
            return value

    recorder = Recorder(7, 2)
    spec = __import__("hrdis").solvers.METHODS[method]
    params = {"steps": 6, **({"sigma_y": 0.1} if method == "ddrm" else {})}
    if method == "dmplug" and variant == "official":
        pytest.skip("DMPlug has no official variant in the HRDIS codebase")
    config = spec.build_config(params, variant)
    seeded = spec.solver(y, op, prior, config, randomness=recorder).image
    assert torch.equal(seeded, solve(y, op, prior, method, seed=7, variant=variant, **params).image)
    replayed = spec.solver(y, op, prior, config, randomness=ReplayNoise(recorder.draws)).image
    assert torch.equal(seeded, replayed)


def test_replay_refuses_a_draw_it_does_not_hold():
    replay = ReplayNoise([("fresh", torch.zeros(2, 3))])
    with pytest.raises(ValueError, match="holds 6 numbers"):
        replay.randn((2, 4), role="fresh")
    with pytest.raises(ValueError, match="no more draws of role 'initial'"):
        replay.randn((2, 3), role="initial")


# --------------------------------------------------------------------------------------------------
# Official variants: each difference on its own


def test_official_grid_and_first_update():
    from hrdis.schedule import VPSchedule

    s = VPSchedule()
    assert len(s.strided_timesteps(150)) == 167 and s.strided_timesteps(150)[:2] == [996, 990]
    assert len(s.strided_timesteps(30)) == 31 and s.strided_timesteps(20)[-1] == 0
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = Inpainting((torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float())
    y = op(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    official = solve(y, op, prior, "hrdis", steps=20, variant="official", lr=0.1)
    assert official.nfe == 20 and official.params["timestep_grid"] == "strided"
    assert [h["t"] for h in official.history][:2] == [950, 900]
    assert "loss_obs" not in official.history[0] and "loss_obs" in official.history[1]  # no update at step 0
    # Each difference can be set on its own: the official variant with every default put back is the default.
    from hrdis.solvers.hrdis import HRDISConfig

    back = {k: getattr(HRDISConfig(), k) for k in HRDISConfig.OFFICIAL}
    restored = solve(y, op, prior, "hrdis", steps=20, variant="official", lr=0.1, **back)
    assert torch.equal(restored.image, solve(y, op, prior, "hrdis", steps=20, lr=0.1).image)


def test_official_result_is_the_estimate_before_the_last_update_unclamped():
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = AveragePoolSR(2)
    y = op(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 4 - 2)  # outside [-1, 1]
    iterates = []
    spec = __import__("hrdis").solvers.METHODS["reddiff"]
    config = spec.build_config({"steps": 10}, "official")
    result = spec.solver(y, op, prior, config, callback=lambda info: iterates.append(info["x"].clone()))
    assert torch.equal(result.image, iterates[-2]) and result.image.abs().max() > 1


def test_batch_mean_loss_couples_the_images_of_a_batch():
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = AveragePoolSR(2)
    y = op(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    per_image = solve(y, op, prior, "hrdis", seed=[3, 4], steps=8).image
    assert torch.equal(per_image[1:], solve(y[1:], op, prior, "hrdis", seed=4, steps=8).image)
    coupled = solve(y, op, prior, "hrdis", seed=[3, 4], steps=8, loss_reduction="batch_mean").image
    alone = solve(y[1:], op, prior, "hrdis", seed=4, steps=8, loss_reduction="batch_mean").image
    assert not torch.equal(coupled[1:], alone)  # a batch of 2 halves every image's gradient


def test_official_phase_retrieval_pads_64_pixels_at_any_size():
    from hrdis.tasks import get_task

    task = get_task("phase-retrieval")
    assert task.operator(64, 0).padding(64) == 16 and task.operator(64, 0, "official").padding(64) == 64
    assert task.operator(32, 0, "official").padding(32) == 64


def test_a_parameter_the_method_does_not_take_is_a_one_line_error():
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = AveragePoolSR(2)
    y = op(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"method dps takes no parameter 'beta' .*; its parameters: steps"):
        solve(y, op, prior, "dps", beta=0.5)
    with pytest.raises(ValueError, match=r"did you mean obs_weight\?"):
        solve(y, op, prior, "hrdis", obs_wieght=0.5)
    with pytest.raises(ValueError, match="bicubic takes no parameter 'steps'; it takes none"):
        solve(y, op, prior, "bicubic", steps=3)
    with pytest.raises(ValueError, match="variant must be one of default, official, authors"):
        solve(y, op, prior, "hrdis", variant="paper")
