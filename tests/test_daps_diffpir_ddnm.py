"""DAPS, DiffPIR and DDNM / DDNM+ on the Gaussian prior, whose posterior is known in closed form.

With x_0 ~ N(m, s^2 I) and a noiseless linear y = A x, the posterior mean is m + A^+ (y - A m) and the
posterior spreads by s along A's null space and not at all in its range. With y = x + sigma_y n (denoising)
it is N((sigma_y^2 m + s^2 y) / (s^2 + sigma_y^2), s^2 sigma_y^2 / (s^2 + sigma_y^2)) per pixel. Each solve
runs a batch of copies of y (one seed per copy), so one call gives many draws.
"""

import pytest
import torch

from hrdis import nonlinear, operators, resolve_params, solve
from hrdis.masks import random_pixel_mask
from hrdis.solvers import METHODS
from hrdis.solvers.daps import edm_sigmas, edm_timestep, poly7_grid
from hrdis.solvers.ddnm import travel_path
from hrdis.solvers.ddrm import svd_of
from hrdis.solvers.diffpir import proximal_step, quadratic_timesteps

from conftest import DRAWS, LINEAR_CASES, PRIOR_STD, Squared, cached_draws


# Small budgets: DAPS on 50 levels x 2 ODE steps with 50 Langevin steps per level.
SETTINGS = {
    "ddnm": dict(steps=50),
    "ddnm-plus": dict(steps=50),
    "diffpir": dict(steps=50),
    "daps-light": dict(langevin_steps=50),
}
# Largest per-image RMS of A(x) - y on a noiseless problem. DDNM ends on A^+ y + (I - A^+ A) x0: exact.
# DiffPIR's last proximal step keeps rho_0 / (s^2 + rho_0) of the gap to the prior's estimate (rho_0 ~ 0.07
# for lambda 7 and the 0.001 noise floor). DAPS's likelihood assumes noise tau = 0.007 and its Langevin steps
# shrink to 1% of lr at the last level, so it ends within a few tau of y.
RESIDUAL_TOLERANCE = {"ddnm": 1e-4, "ddnm-plus": 1e-4, "diffpir": 0.01, "daps-light": 0.04}


NULL_FRACTION = {"inpaint": 0.5, "sr2": 0.75}  # the share of A's null space in the image


@pytest.fixture(scope="module")
def draws(rough_prior, problems):
    return cached_draws(rough_prior, problems, SETTINGS)


@pytest.mark.parametrize("method", list(RESIDUAL_TOLERANCE))
@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_output_fits_a_noiseless_measurement(problems, draws, method, case):
    op, y, _ = problems[case]
    residual = (op(draws(method, case).image) - y).pow(2).flatten(1).mean(1).sqrt().max().item()
    assert residual < RESIDUAL_TOLERANCE[method], f"{method}/{case}: measurement residual {residual:.4f}"


@pytest.mark.parametrize("method", ["ddnm", "ddnm-plus", "diffpir", "daps-light"])
@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_draws_centre_on_the_gaussian_posterior_mean(problems, draws, method, case):
    op, y, target = problems[case]
    result = draws(method, case)
    assert (op.pinv(y) - target).pow(2).mean().sqrt() > 0.2  # the prior must fill the null space
    # The mean of 16 draws of null-space spread s = 0.1 is itself uncertain by ~0.1 / 4.
    rmse_mean = (result.image.mean(0, keepdim=True) - target).pow(2).mean().sqrt().item()
    assert rmse_mean < 0.045, f"{method}/{case}: mean of {DRAWS} draws is {rmse_mean:.3f} from the posterior mean"
    spread = result.image - result.image.mean(0, keepdim=True)
    null_std = ((spread - op.pinv(op(spread))).pow(2).mean() / NULL_FRACTION[case]).sqrt().item()
    assert 0.5 * PRIOR_STD < null_std < 2 * PRIOR_STD, f"{method}/{case}: null-space spread {null_std:.3f}"


def test_daps_samples_spread_as_the_gaussian_posterior(rough_prior):
    """Denoising at sigma_y = s: the posterior std is s / sqrt(2) on every pixel. DAPS's draws spread within a
    factor of it (its N(x0_hat, sigma^2) stand-in for p(x_0 | x_t) is not exact), and centre on its mean."""
    sigma_y = 0.1
    g = torch.Generator().manual_seed(2)
    x = rough_prior.mean + PRIOR_STD * torch.randn(rough_prior.mean.shape, generator=g)
    y = x + sigma_y * torch.randn(x.shape, generator=g)
    var = PRIOR_STD**2 * sigma_y**2 / (PRIOR_STD**2 + sigma_y**2)
    mean = (sigma_y**2 * rough_prior.mean + PRIOR_STD**2 * y) / (PRIOR_STD**2 + sigma_y**2)
    # lr for this problem's scale: the likelihood's curvature is 1 / tau^2 = 100, not the paper's 2e4.
    result = solve(y.repeat(DRAWS, 1, 1, 1), operators.Identity(), rough_prior, "daps-light", seed=0, tau=sigma_y,
                   lr=1e-3, langevin_steps=50)
    std = result.image.std(0).pow(2).mean().sqrt().item()
    assert 0.7 * var**0.5 < std < 1.5 * var**0.5, f"DAPS spread {std:.4f}, posterior std {var**0.5:.4f}"
    # the posterior mean lies 0.07 (RMS) from the prior's m; the draws' mean must be nearer to it than to m
    to_posterior = (result.image.mean(0, keepdim=True) - mean).pow(2).mean().sqrt().item()
    to_prior = (result.image.mean(0, keepdim=True) - rough_prior.mean).pow(2).mean().sqrt().item()
    assert to_posterior < 0.045 and to_posterior < to_prior, f"{to_posterior:.3f} from the posterior mean"


def test_daps_handles_nonlinear_operators(rough_prior):
    op = Squared()
    y = op(rough_prior.mean)
    result = solve(y.repeat(4, 1, 1, 1), op, rough_prior, "daps-light", langevin_steps=50)
    assert (op(result.image) - y).pow(2).flatten(1).mean(1).sqrt().max() < 0.03


def test_ddnm_plus_with_noisy_measurements_does_not_fit_the_noise(rough_prior, problems):
    """Told sigma_y, DDNM+ keeps about sigma_y of residual (the noise) instead of fitting y as DDNM does."""
    from hrdis.noise import GaussianNoise

    op, y, _ = problems["sr2"]
    noisy = GaussianNoise(0.05)(y, seed=0)
    residual = {method: (op(solve(noisy.repeat(4, 1, 1, 1), op, rough_prior, method, steps=50).image)
                         - noisy).pow(2).flatten(1).mean(1).sqrt().mean().item() for method in ("ddnm", "ddnm-plus")}
    plus = (op(solve(noisy.repeat(4, 1, 1, 1), op, rough_prior, "ddnm-plus", steps=50, sigma_y=0.05).image)
            - noisy).pow(2).flatten(1).mean(1).sqrt().mean().item()
    assert residual["ddnm"] < 1e-4 and residual["ddnm-plus"] < 1e-4  # sigma_y = 0: exact fit
    assert 0.025 < plus < 0.075


# ------------------------------------------------------------------------------------------------
# The pieces


@pytest.mark.parametrize("make", [lambda: operators.Inpainting(random_pixel_mask(8, 0.5, seed=1)),
                                  lambda: operators.AveragePoolSR(2),
                                  lambda: operators.Blur(operators.motion_kernel(5, 0.5, seed=2), pinv_tol=0)])
def test_diffpir_proximal_step_solves_the_regularised_least_squares(make):
    op = make()
    g = torch.Generator().manual_seed(4)
    x, x0 = torch.randn((2, 1, 1, 8, 8), generator=g, dtype=torch.float64)
    y, rho = op(x), 0.3
    basis = torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)
    a = op(basis).reshape(64, -1).T  # A as a matrix: column j is A e_j
    dense = torch.linalg.solve(a.T @ a + rho * torch.eye(64, dtype=torch.float64),
                               a.T @ y.flatten() + rho * x0.flatten())
    got = proximal_step(svd_of(op, (8, 8)), y.float(), x0.float(), rho)
    assert torch.allclose(got.flatten().double(), dense, atol=1e-4)


def test_timestep_grids_and_the_sigma_map(rough_prior):
    quad = quadratic_timesteps(20, 1000)
    assert quad[0] == 999 and quad[-1] == 0 and len(quad) == 20
    assert all(a > b for a, b in zip(quad, quad[1:]))
    assert quad[0] - quad[1] > quad[-2] - quad[-1]  # denser near t = 0
    grid = poly7_grid(100.0, 0.1, 250)
    assert grid[0] == pytest.approx(100.0) and grid[-1] == pytest.approx(0.1) and len(grid) == 250
    sigmas = edm_sigmas(rough_prior.schedule)
    assert all(edm_timestep(sigmas[t].item(), sigmas) == t for t in (0, 1, 40, 500, 999))
    assert edm_timestep(1e6, sigmas) == 999 and edm_timestep(1e-6, sigmas) == 0


def test_time_travel_path():
    assert travel_path(4, 1, 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]  # no travel
    moves = travel_path(10, 5, 2)
    assert moves[:6] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)]  # back 5 steps once, at step 5
    assert sum(1 for a, b in moves if b > a) == 15 and moves[-1] == (9, 10)


# ------------------------------------------------------------------------------------------------
# Cost reporting, seeds, settings, refusals


@pytest.mark.parametrize("method, params, nfe", [
    ("ddnm", dict(steps=5), 5),
    ("ddnm-plus", dict(steps=10, travel_length=5, travel_repeat=2), 15),
    ("diffpir", dict(steps=5), 5),
    ("daps-light", dict(steps=5, ode_steps=2, langevin_steps=3), 10),
])
def test_methods_report_cost_and_history(rough_prior, problems, method, params, nfe):
    op, y, _ = problems["sr2"]
    result = solve(y, op, rough_prior, method, reference=rough_prior.mean, **params)
    assert result.nfe == nfe and result.backprop is False and result.method == method
    assert all("t" in h and "psnr" in h for h in result.history)
    assert result.image.shape == (1, 3, 16, 16) and result.image.abs().max() <= 1
    assert "NFE" in METHODS[method].description and "backprop" in METHODS[method].description


@pytest.mark.parametrize("method", ["ddnm", "ddnm-plus", "diffpir", "daps-light"])
def test_same_seed_same_result(rough_prior, problems, method):
    op, y, _ = problems["inpaint"]
    params = dict(steps=4, **({"langevin_steps": 3} if method.startswith("daps") else {}))
    a, b, c = (solve(y, op, rough_prior, method, seed=s, **params).image for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_task_parameters():
    assert resolve_params("daps", "phase-retrieval")["lr"] == 5e-5
    assert resolve_params("daps", "inpaint-random")["lr"] == 1e-4
    assert resolve_params("daps", "inpaint-box")["lr"] == 5e-5
    assert resolve_params("daps", "hdr")["lr"] == 2e-5
    assert resolve_params("daps", "deblur-nonlinear").items() >= {"lr": 2.5e-4, "langevin_steps": 200}.items()
    assert resolve_params("daps", "sr4").items() >= {"steps": 250, "ode_steps": 4}.items()
    assert resolve_params("daps-4k", "sr4").items() >= {"steps": 400, "ode_steps": 10, "lr": 1e-4}.items()
    assert resolve_params("daps-light", "sr4").items() >= {"steps": 50, "ode_steps": 2}.items()
    assert resolve_params("diffpir", "inpaint-box").items() >= {"lam": 1.0, "zeta": 1.0, "steps": 20}.items()
    assert resolve_params("diffpir", "deblur-motion").items() >= {"lam": 7.0, "zeta": 0.3, "steps": 100}.items()
    assert resolve_params("diffpir", "cs25").items() >= {"lam": 1.0, "zeta": 1.0, "steps": 100}.items()
    assert resolve_params("diffpir", "sr4", "gaussian:0.05")["sigma_y"] == 0.05
    assert resolve_params("ddnm-plus", "sr4", "gaussian:0.05")["sigma_y"] == 0.05
    with pytest.raises(ValueError, match="takes no parameter 'sigma_y'"):
        resolve_params("ddnm", "sr4", sigma_y=0.1)


@pytest.mark.parametrize("method, params, message", [
    ("diffpir", dict(zeta=1.5), "zeta"),
    ("diffpir", dict(steps=1), "steps"),
    ("diffpir", dict(timestep_grid="log"), "timestep_grid"),
    ("ddnm", dict(eta=2.0), "eta"),
    ("ddnm-plus", dict(travel_length=0), "travel_length"),
    ("daps", dict(sigma_min=200.0), "sigma_min"),
    ("daps", dict(lr=0.0), "lr"),
    ("daps", dict(sigma_max=1e4), "outside the prior"),
])
def test_bad_settings_raise_clear_errors(rough_prior, problems, method, params, message):
    op, y, _ = problems["sr2"]
    with pytest.raises(ValueError, match=message):
        solve(y, op, rough_prior, method, **{"steps": 3, **params})


def test_methods_refuse_operators_they_cannot_use(rough_prior):
    y = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="ddnm needs a linear operator"):
        solve(y, Squared(), rough_prior, "ddnm", steps=3)
    with pytest.raises(ValueError, match="ddnm-plus needs a linear operator"):
        solve(y, nonlinear.HDR(), rough_prior, "ddnm-plus", steps=3)
    with pytest.raises(ValueError, match="diffpir needs an operator with an SVD"):
        solve(y, nonlinear.HDR(), rough_prior, "diffpir", steps=3)
