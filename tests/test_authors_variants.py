"""The authors' variants (DPS, DMPlug, DAPS as their authors' code runs them), each difference on its own;
the learned variance of learn_sigma networks; continuous timesteps; the authors' mirrored-border Resizer.
(The replays of the authors' runs themselves are in test_parity.py.)"""

from pathlib import Path

import pytest
import torch

from hrdis import GaussianPrior, load_prior, solve
from hrdis.operators import AveragePoolSR, BicubicSR, bicubic_matrix, resizer_matrix
from hrdis.randomness import SeededNoise
from hrdis.sampling import ddim_step, learned_log_variance
from hrdis.schedule import VPSchedule
from hrdis.solvers import METHODS, VARIANTS

ADM = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "adm"


def small_problem(batch=1):
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = AveragePoolSR(2)
    y = op(torch.rand(batch, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    return prior, op, y


def test_authors_is_a_variant_with_its_own_fields():
    assert "authors" in VARIANTS
    for method in ("dps", "dmplug", "daps"):
        config = METHODS[method].config
        assert config.AUTHORS and config.AUTHORS_SOURCE
        assert set(config.AUTHORS) <= set(config.names())  # every difference is an ordinary field
    assert METHODS["hrdis"].build_config({}, "authors") == METHODS["hrdis"].build_config({})  # none: the default


@pytest.mark.parametrize("method, params", [("dps", dict(steps=6)), ("daps", dict(steps=3, ode_steps=2, langevin_steps=2))])
def test_authors_variant_with_every_default_put_back_is_the_default(method, params):
    prior, op, y = small_problem()
    config = METHODS[method].config
    back = {k: getattr(config(), k) for k in config.AUTHORS}
    restored = solve(y, op, prior, method, variant="authors", **params, **back)
    assert torch.equal(restored.image, solve(y, op, prior, method, **params).image)
    assert not torch.equal(solve(y, op, prior, method, variant="authors", **params).image, restored.image)


def test_dps_one_norm_over_the_batch_couples_the_images():
    prior, op, y = small_problem(batch=2)
    per_image = solve(y, op, prior, "dps", seed=[3, 4], steps=6).image
    assert torch.equal(per_image[1:], solve(y[1:], op, prior, "dps", seed=4, steps=6).image)
    coupled = solve(y, op, prior, "dps", seed=[3, 4], steps=6, misfit_reduction="batch").image
    alone = solve(y[1:], op, prior, "dps", seed=4, steps=6, misfit_reduction="batch").image
    assert not torch.allclose(coupled[1:], alone, atol=1e-6)


def test_dps_unused_draws_consume_the_stream_as_the_authors_code():
    """Per step the authors draw the DDPM noise (at t = 0 too) and a q_sample draw shaped like y."""
    prior, op, y = small_problem()
    roles = []

    class Recorder(SeededNoise):
        def randn(self, shape, device=None, role="step"):
            roles.append((role, tuple(shape)))
            return super().randn(shape, device, role)

    spec = METHODS["dps"]
    spec.solver(y, op, prior, spec.build_config({"steps": 4}, "authors"), randomness=Recorder(0, 1))
    assert roles == [("initial", (1, 3, 16, 16))] + [("step", (1, 3, 16, 16)), ("unused", tuple(y.shape))] * 4


def test_dmplug_authors_result_is_the_best_psnr_iterate_and_needs_the_truth():
    prior, op, _ = small_problem()
    truth = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    y = op(truth)
    with pytest.raises(ValueError, match="oracle_result .* needs the clean image: pass reference="):
        solve(y, op, prior, "dmplug", variant="authors", steps=4)
    result = solve(y, op, prior, "dmplug", variant="authors", steps=6, reference=truth)
    assert result.params["early_stopping"] is False and result.params["steps"] == 6
    assert torch.equal(result.image, result.extras["oracle_image"])
    psnr = [h["psnr"] for h in result.history]
    assert result.extras["oracle_step"] == [max(range(len(psnr)), key=lambda k: (psnr[k], -k))]


def test_diffusers_schedule_is_float32_linspace():
    s = VPSchedule().in_precision("float32-diffusers")
    betas = torch.linspace(1e-4, 0.02, 1000)
    assert torch.equal(s.alpha_bar32, torch.cumprod(1 - betas, 0))
    assert (s.alpha_bar - VPSchedule().alpha_bar).abs().max() < 1e-6


# --------------------------------------------------------------------------------------------------
# Continuous timesteps


def test_continuous_schedule_is_the_vp_sde_of_the_discrete_one():
    s = VPSchedule()
    t = torch.arange(1000)
    assert (s.continuous_alpha_bar(t.double()) - s.alpha_bar).abs().max() < 2e-3  # close, not equal
    assert s.continuous_alpha_bar(0.0).item() == 1.0 and s.alpha_bar[0].item() < 1.0
    # EDM's VPPrecond: sigma(u) = sqrt(exp(beta_d u^2 / 2 + beta_min u) - 1), beta_min 0.1, beta_d 19.9
    u = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    sigma = ((0.5 * 19.9 * u**2 + 0.1 * u).exp() - 1).sqrt()
    assert torch.allclose(s.continuous_alpha_bar(999 * u), 1 / (1 + sigma**2), rtol=1e-12)


def test_prior_takes_continuous_timesteps():
    """A float t reaches the network's embedding unrounded, with the continuous process's scales."""
    prior = load_prior()  # the bundled v-prediction prior
    x = torch.randn(2, 3, prior.image_size, prior.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        at_int, at_float = prior.eps(x, 500), prior.eps(x, 500.0)
        at_fraction = prior.eps(x, 500.4)
        abar = prior.schedule.continuous_alpha_bar(torch.tensor(500.4, dtype=torch.float64))
        v = prior.network(x, torch.tensor([500.4, 500.4]))
    expected = (1 - abar).sqrt().float() * x + abar.sqrt().float() * v
    assert torch.allclose(at_fraction, expected, atol=1e-6)
    assert not torch.equal(at_int, at_float) and (at_int - at_float).abs().max() < 0.05
    assert not torch.allclose(at_fraction, at_float, atol=1e-6)  # 500.4 is not rounded to 500


# --------------------------------------------------------------------------------------------------
# Learned variance (guided-diffusion's learned_range), on the ADM fixture's learn_sigma network


@pytest.mark.skipif(not ADM.is_dir(), reason="../shared/fixtures/adm is not beside the repo")
def test_learned_variance_of_a_learn_sigma_network():
    prior = load_prior(ADM / "adm_small64_state_dict.pt", config={"image_size": 64, "num_head_channels": 16})
    io = torch.load(ADM / "adm_small64_io.pt", weights_only=True)
    x, t = io["x"], 700
    with torch.no_grad():
        eps, v = prior.eps_and_variance(x, io["t"])
        assert (v - io["out"][:, 3:]).abs().max() < 1e-4 and (eps - io["out"][:, :3]).abs().max() < 1e-4
        assert prior.eps_and_variance(x, t)[1].shape == (2, 3, 64, 64)

        # one DDPM step 700 -> 650 with fixed noise: learned and fixed-small variance share the mean
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        noise = lambda: type("N", (), {"randn": lambda self, shape, device=None, role="step": z.clone()})()  # noqa: E731
        fixed, _ = ddim_step(prior, x, t, 650, eta=1.0, generator=noise(), clip_x0=False)
        learned, _ = ddim_step(prior, x, t, 650, eta=1.0, generator=noise(), clip_x0=False, learned_variance=True)
        abar = prior.schedule.alpha_bar
        beta = 1 - abar[t] / abar[650]
        beta_tilde = (1 - abar[650]) / (1 - abar[t]) * beta
        v = prior.eps_and_variance(x, t)[1].double()
        std = torch.exp(0.5 * ((v + 1) / 2 * beta.log() + (1 - v) / 2 * beta_tilde.log()))
        assert torch.allclose((learned - fixed).double(), (std - beta_tilde.sqrt()) * z.double(), atol=1e-5)
        assert (learned - fixed).abs().max() > 1e-3
    # v = -1 is beta_tilde, v = 1 is beta
    b, bt = torch.tensor(0.02), torch.tensor(0.01)
    assert torch.allclose(learned_log_variance(torch.tensor(-1.0), b, bt), bt.log())
    assert torch.allclose(learned_log_variance(torch.tensor(1.0), b, bt), b.log())


def test_learned_variance_without_a_variance_head_is_fixed_small():
    prior, op, y = small_problem()
    with_flag = solve(y, op, prior, "dps", steps=6, learned_variance=True).image
    assert torch.equal(with_flag, solve(y, op, prior, "dps", steps=6).image)


# --------------------------------------------------------------------------------------------------
# The authors' Resizer: BicubicSR with mirrored borders


def test_mirrored_resizer_differs_from_torch_only_at_the_borders():
    mirror, clamp = resizer_matrix(64, 4), bicubic_matrix(64, 4)
    assert torch.allclose(mirror.sum(1), torch.ones(16, dtype=torch.float64))
    diff = (mirror - clamp).abs().max(1).values
    assert diff[2:-2].max() < 1e-12 and diff[[0, 1, -2, -1]].min() > 1e-3 and diff.max() < 0.1


@pytest.mark.parametrize("size", [64, (32, 48)])
def test_mirrored_resizer_adjoint_and_pinv(size):
    op = BicubicSR(4, size, border="mirror")
    g = torch.Generator().manual_seed(0)
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, h // 4, w // 4, generator=g, dtype=torch.float64)
    assert abs((op(x) * y).sum().item() - (x * op.adjoint(y)).sum().item()) < 1e-10 * x.abs().sum().item()
    assert torch.allclose(op(op.pinv(y)), y, atol=1e-5)
    assert op.name == "bicubic-sr4-mirror"
    svd = op.svd((h, w))
    assert torch.allclose(svd.u(svd.singulars * svd.vt(x.float())), op(x.float()), atol=1e-4)
    with pytest.raises(ValueError, match="border must be one of clamp, mirror"):
        BicubicSR(4, 64, border="reflect")


def test_mirrored_resizer_runs_with_an_svd_solver():
    prior = GaussianPrior(0.1, 0.5, image_size=16)
    op = BicubicSR(4, 16, border="mirror")
    y = op(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    x = solve(y, op, prior, "ddrm", steps=4).image
    assert x.shape == (1, 3, 16, 16) and torch.isfinite(x).all()


def test_daps_phase_retrieval_on_the_unit_range():
    from hrdis.nonlinear import PhaseRetrieval

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    op = PhaseRetrieval(2.0, unit_range=True)
    assert torch.allclose(op(x), PhaseRetrieval(2.0)((x + 1) / 2))
    assert len(op.equivalents(x)) == 2  # -x is no longer a twin


def test_authors_variant_tasks_build_the_authors_operators():
    from hrdis.tasks import get_task

    assert get_task("sr4-bicubic").operator(64, 0, "authors").border == "mirror"
    assert get_task("sr4-bicubic").operator(64, 0).border == "clamp"
    assert get_task("phase-retrieval").operator(64, 0, "authors").padding(64) == 64
