"""HRDIS and its presets (RED-diff = DR, CR) against closed-form answers under a Gaussian prior.

With x_0 ~ N(m, s^2 I) and a noiseless linear measurement y = A x, the posterior is Gaussian with mean
x* = m + A^+ (y - A m) (the measurement fixes the range of A^T, the prior mean fills the null space)
and standard deviation s along the null space. The regulariser's expected gradient,
omega_t E[eps_theta - eps_h] ~ (mu - m) sigma_t^2 / (alpha_t^2 s^2 + sigma_t^2), is a ridge towards m;
its noise makes each solve a draw around x*. So: the mean over many seeds (a batch of copies of y,
each drawing its own noise) must approach x*, every draw must fit the measurement, and the spread
along the null space must be of the order of the posterior's s.
"""

import pytest
import torch

from hrdis import GaussianPrior, operators, solve
from hrdis.masks import random_pixel_mask
from hrdis.solvers import hybrid_noise

PRIOR_STD = 0.1
DRAWS = 16


@pytest.fixture(scope="module")
def rough_prior():
    """A per-pixel random prior mean, so that A^+ y is far from the posterior mean (a non-trivial test)."""
    g = torch.Generator().manual_seed(0)
    return GaussianPrior(mean=torch.rand((1, 3, 16, 16), generator=g) - 0.5, std=PRIOR_STD)


def posterior_mean(op, y, m):
    return m + op.pinv(y - op(m))


def truth_sample(prior, seed):
    g = torch.Generator().manual_seed(seed)
    return (prior.mean + prior.std * torch.randn(prior.mean.shape, generator=g)).clamp(-1, 1)


CASES = {
    "inpaint": lambda: operators.Inpainting(random_pixel_mask(16, 0.5, seed=3)),
    "sr2": lambda: operators.AveragePoolSR(2),
}


@pytest.mark.parametrize("method", ["hrdis", "reddiff", "cr"])
@pytest.mark.parametrize("case", list(CASES))
def test_draws_centre_on_the_gaussian_posterior_mean(rough_prior, method, case):
    op = CASES[case]()
    y = op(truth_sample(rough_prior, seed=1))
    target = posterior_mean(op, y, rough_prior.mean)
    result = solve(y.repeat(DRAWS, 1, 1, 1), op, rough_prior, method, steps=1000 if method == "reddiff" else 150,
                   lr=0.1, reg_weight=0.25, seed=0)
    draws = result.image
    rmse_mean = (draws.mean(0, keepdim=True) - target).pow(2).mean().sqrt().item()
    rmse_init = (result.init[:1] - target).pow(2).mean().sqrt().item()
    assert rmse_init > 0.2  # the start is far from the answer
    assert rmse_mean < 0.045, f"{method}/{case}: mean of {DRAWS} draws is {rmse_mean:.3f} from the posterior mean"
    residual = (op(draws) - y).pow(2).flatten(1).mean(1).sqrt().max().item()
    assert residual < 0.02, f"{method}/{case}: measurement residual {residual:.3f}"
    spread = draws - draws.mean(0, keepdim=True)
    null_spread = spread - op.pinv(op(spread))  # the part of the spread the measurement cannot see
    null_fraction = {"inpaint": 0.5, "sr2": 0.75}[case]
    null_std = (null_spread.pow(2).mean() / null_fraction).sqrt().item()
    assert 0.5 * PRIOR_STD < null_std < 2 * PRIOR_STD, f"{method}/{case}: null-space spread {null_std:.3f}"


def test_regulariser_matters(rough_prior):
    """Without the regulariser the null space stays at the init A^+ y, far from the posterior mean."""
    op = CASES["inpaint"]()
    y = op(truth_sample(rough_prior, seed=1))
    target = posterior_mean(op, y, rough_prior.mean)
    result = solve(y, op, rough_prior, "hrdis", steps=150, lr=0.1, reg_weight=0.0)
    assert (result.image - target).pow(2).mean().sqrt().item() > 0.15


def test_hybrid_noise_mixes_with_unit_variance():
    g = torch.Generator().manual_seed(0)
    prev, fresh = torch.randn(200_000, generator=g), torch.randn(200_000, generator=g)
    assert torch.equal(hybrid_noise(None, fresh, 0.2), fresh)
    assert torch.equal(hybrid_noise(prev, fresh, 1.0), fresh)
    assert torch.equal(hybrid_noise(prev, fresh, 0.0), prev)
    h = hybrid_noise(prev, fresh, 0.2)
    assert abs(h.std().item() - 1.0) < 0.01
    assert abs(torch.corrcoef(torch.stack([h, prev]))[0, 1].item() - 0.8**0.5) < 0.01


def test_same_seed_same_result_different_seed_different(rough_prior):
    op = CASES["sr2"]()
    y = op(truth_sample(rough_prior, seed=1))
    a = solve(y, op, rough_prior, steps=20, seed=5).image
    b = solve(y, op, rough_prior, steps=20, seed=5).image
    c = solve(y, op, rough_prior, steps=20, seed=6).image
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_history_records_each_step(rough_prior):
    op = CASES["inpaint"]()
    x = truth_sample(rough_prior, seed=1)
    result = solve(op(x), op, rough_prior, steps=7, reference=x)
    assert [h["step"] for h in result.history] == list(range(7))
    assert result.history[0]["t"] == 999 and result.history[-1]["t"] == 0
    assert all("psnr" in h and "loss_obs" in h and "loss_reg" in h for h in result.history)
    assert result.nfe == 7 and result.backprop is False


def test_task_presets_and_overrides_resolve():
    from hrdis import resolve_params

    assert resolve_params("hrdis", "inpaint-box").items() >= dict(steps=150, obs_weight=1.0, reg_weight=0.25, lr=0.1,
                                                                  beta=0.2).items()
    assert resolve_params("reddiff", "sr4")["steps"] == 1000 and resolve_params("reddiff", "sr4")["beta"] == 1.0
    assert resolve_params("cr", "cs25", steps=7)["steps"] == 7
    noisy = resolve_params("hrdis", "inpaint-box", "gaussian:0.05")
    assert noisy["min_weight"] == 2.0 and noisy["obs_weight"] == 0.1
    assert resolve_params("hrdis", "inpaint-box", "poisson:1.0")["obs_weight"] == 0.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(beta=1.5), "beta"),
    (dict(beta=-0.1), "beta"),
    (dict(steps=0), "steps"),
    (dict(steps=-3), "steps"),
    (dict(lr=0.0), "lr"),
])
def test_bad_settings_raise_clear_errors(rough_prior, kwargs, message):
    op = CASES["sr2"]()
    y = op(rough_prior.mean.clone())
    with pytest.raises(ValueError, match=message):
        solve(y, op, rough_prior, **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_measurement_is_rejected(rough_prior, bad):
    op = CASES["sr2"]()
    y = op(rough_prior.mean.clone())
    y[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        solve(y, op, rough_prior, steps=3)


def test_unknown_method_and_task():
    op = operators.Identity()
    prior = GaussianPrior()
    y = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown method"):
        solve(y, op, prior, "nope")
    with pytest.raises(ValueError, match="unknown task"):
        solve(y, op, prior, task="nope")


def test_size_mismatch_with_prior(tiny_prior_dir):
    from hrdis import load_prior

    prior = load_prior(tiny_prior_dir)
    y = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="32x32"):
        solve(y, operators.Identity(), prior, steps=2)
