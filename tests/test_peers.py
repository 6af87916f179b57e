"""Peer methods (DPS, DMPlug, DDIM, DR+DDIM, PiGDM, DDRM) on the operators and the Gaussian prior.

As in test_solvers.py: with x_0 ~ N(m, s^2 I) and a noiseless linear y = A x, the posterior mean is
x* = m + A^+ (y - A m). Each solve runs a batch of copies of y, so one call gives many draws.
"""

import pytest
import torch

from hrdis import GaussianPrior, nonlinear, operators, resolve_params, solve
from hrdis.masks import random_pixel_mask
from hrdis.solvers import METHODS
from hrdis.solvers.ddrm import svd_of
from hrdis.solvers.dmplug import WindowedVarianceStop, es_wmv, windowed_variance
from hrdis.solvers.dps import task_step_size
from hrdis.solvers.drddim import ddim_fresh_fraction

from conftest import DRAWS, LINEAR_CASES, PRIOR_STD, Squared, cached_draws


# Settings small enough for the test budget: DPS on a 500-step strided grid. DMPlug runs 150 iterations at
# lr 0.1 instead of the paper's 0.01: on this narrow prior (s = 0.1) R(z) ~ m + s z, so the seed must
# move by several units to fit y, more than a few hundred Adam steps of 0.01 allow.
SETTINGS = {
    "dps": dict(steps=500),
    "ddrm": dict(steps=100),
    "pigdm": dict(steps=50),
    "drddim": dict(steps=150, lr=0.1, reg_weight=0.25),
    "dmplug": dict(steps=150, lr=0.1),
}
# Largest per-image RMS of A(x) - y. DDRM and PiGDM project onto the measurement at the last step; DPS
# only takes gradient steps of fixed size zeta, so it ends within a step's reach of consistency (~0.01
# here); DR+DDIM and DMPlug fit y by Adam and stop with a small residual.
RESIDUAL_TOLERANCE = {"dps": 0.02, "ddrm": 1e-3, "pigdm": 0.01, "drddim": 0.02, "dmplug": 0.02}



@pytest.fixture(scope="module")
def draws(rough_prior, problems):
    """Each (method, case) solved once, DRAWS copies in one call."""
    return cached_draws(rough_prior, problems, SETTINGS)


@pytest.mark.parametrize("method", list(RESIDUAL_TOLERANCE))
@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_output_fits_the_measurement(problems, draws, method, case):
    op, y, _ = problems[case]
    residual = (op(draws(method, case).image) - y).pow(2).flatten(1).mean(1).sqrt().max().item()
    assert residual < RESIDUAL_TOLERANCE[method], f"{method}/{case}: measurement residual {residual:.4f}"


@pytest.mark.parametrize("method", ["dps", "ddrm"])
@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_draws_centre_on_the_gaussian_posterior_mean(problems, draws, method, case):
    op, y, target = problems[case]
    result = draws(method, case)
    rmse_mean = (result.image.mean(0, keepdim=True) - target).pow(2).mean().sqrt().item()
    rmse_pinv = (op.pinv(y) - target).pow(2).mean().sqrt().item()
    assert rmse_pinv > 0.2  # A^+ y is far from the answer: the prior must fill the null space
    # The mean of 16 draws of null-space spread s = 0.1 is itself uncertain by ~0.1 / 4.
    assert rmse_mean < 0.045, f"{method}/{case}: mean of {DRAWS} draws is {rmse_mean:.3f} from the posterior mean"
    null_spread = result.image - result.image.mean(0, keepdim=True)
    null_spread = null_spread - op.pinv(op(null_spread))
    null_std = (null_spread.pow(2).mean() / {"inpaint": 0.5, "sr2": 0.75}[case]).sqrt().item()
    assert 0.5 * PRIOR_STD < null_std < 2 * PRIOR_STD, f"{method}/{case}: null-space spread {null_std:.3f}"


def test_ddrm_deblurs_to_the_posterior_of_the_frequencies_it_trusts(rough_prior):
    # Blur's SVD drops the frequencies the kernel all but erases (here 65% of them), as Blur.pinv does;
    # on the rest y is exact, so DDRM's draws should centre on mean + A^+(y - A mean) and spread s elsewhere.
    op = operators.Blur(operators.gaussian_kernel(9, 1.5))
    x = rough_prior.mean + PRIOR_STD * torch.randn(rough_prior.mean.shape, generator=torch.Generator().manual_seed(2))
    y = op(x)
    target = rough_prior.mean + op.pinv(y - op(rough_prior.mean))
    result = solve(y.repeat(DRAWS, 1, 1, 1), op, rough_prior, "ddrm", seed=0, steps=100)
    assert (op.pinv(op(result.image)) - op.pinv(y)).pow(2).mean().sqrt() < 1e-3  # trusted frequencies fit y
    assert (result.image.mean(0, keepdim=True) - target).pow(2).mean().sqrt() < 0.045
    spread = result.image - result.image.mean(0, keepdim=True)
    spread = spread - op.pinv(op(spread))
    assert 0.5 * PRIOR_STD < (spread.pow(2).mean() / 0.65).sqrt() < 2 * PRIOR_STD


def test_ddim_ignores_the_measurement(rough_prior, problems):
    op, y, _ = problems["inpaint"]
    a = solve(y, op, rough_prior, "ddim", steps=10, seed=3).image
    b = solve(torch.zeros_like(y), op, rough_prior, "ddim", steps=10, seed=3).image
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------
# Cost reporting, seeds, settings


@pytest.mark.parametrize("method, params, nfe, backprop", [
    ("dps", dict(steps=5), 5, True),
    ("pigdm", dict(steps=5), 5, True),
    ("dmplug", dict(steps=4, ddim_steps=3), 12, True),
    ("ddrm", dict(steps=5), 5, False),
    ("ddim", dict(steps=5), 5, False),
    ("drddim", dict(steps=5), 5, False),
])
def test_methods_report_cost_and_history(rough_prior, problems, method, params, nfe, backprop):
    op, y, _ = problems["sr2"]
    result = solve(y, op, rough_prior, method, reference=rough_prior.mean, **params)
    assert result.nfe == nfe and result.backprop is backprop and result.method == method
    assert [h["step"] for h in result.history] == list(range(params["steps"]))
    assert all("t" in h and "psnr" in h for h in result.history)
    assert result.image.shape == (1, 3, 16, 16) and result.image.abs().max() <= 1
    assert method in METHODS and "NFE" in METHODS[method].description


@pytest.mark.parametrize("method", ["dps", "pigdm", "ddrm", "dmplug", "drddim"])
def test_same_seed_same_result(rough_prior, problems, method):
    op, y, _ = problems["inpaint"]
    a, b, c = (solve(y, op, rough_prior, method, steps=4, seed=s).image for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_dps_handles_nonlinear_operators(rough_prior):
    op, x = Squared(), rough_prior.mean
    y = op(x)
    result = solve(y.repeat(4, 1, 1, 1), op, rough_prior, "dps", steps=200, step_size=0.5)
    assert (op(result.image) - y).pow(2).flatten(1).mean(1).sqrt().max() < 0.05


@pytest.mark.parametrize("method, params, message", [
    ("dps", dict(step_size=-1.0), "step_size"),
    ("dps", dict(steps=1001), "at most"),
    ("ddim", dict(eta=1.5), "eta"),
    ("pigdm", dict(eta=-0.1), "eta"),
    ("ddrm", dict(eta_b=2.0), "eta_b"),
    ("ddrm", dict(sigma_y=-0.1), "sigma_y"),
    ("pigdm", dict(sigma_y=-0.1), "sigma_y"),
    ("dmplug", dict(window=0), "window"),
    ("dmplug", dict(ddim_steps=0), "ddim_steps"),
    ("dmplug", dict(lr=0.0), "lr"),
    ("drddim", dict(eta=1.2), "eta"),
])
def test_bad_settings_raise_clear_errors(rough_prior, problems, method, params, message):
    op, y, _ = problems["sr2"]
    with pytest.raises(ValueError, match=message):
        solve(y, op, rough_prior, method, **{"steps": 3, **params})


def test_linear_only_methods_refuse_other_operators(rough_prior):
    y = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="linear"):
        solve(y, Squared(), rough_prior, "pigdm", steps=3)
    with pytest.raises(ValueError, match="ddrm needs an operator with an SVD"):
        solve(y, Squared(), rough_prior, "ddrm", steps=3)


def test_task_parameters():
    assert resolve_params("dps", "inpaint-box")["step_size"] == 0.5
    assert resolve_params("dps", "sr4")["step_size"] == 0.3
    assert resolve_params("dps", "deblur-motion")["step_size"] == 0.3
    assert resolve_params("dps", "cs25")["step_size"] == 0.5
    assert task_step_size("phase-retrieval") == 1.0
    assert resolve_params("ddrm", "sr4", "gaussian:0.05")["sigma_y"] == 0.05
    assert resolve_params("ddrm", "sr4")["sigma_y"] == 0.0
    assert resolve_params("pigdm", "deblur-gauss", "gaussian:0.1")["sigma_y"] == 0.1
    assert resolve_params("drddim", "sr4").items() >= {"steps": 100, "obs_weight": 1.0, "reg_weight": 0.2,
                                                       "lr": 0.5}.items()


def test_presets_take_the_overrides_tuned_for_the_priors_image_size():
    table5 = resolve_params("hrdis", "inpaint-box")
    assert table5["lr"] == 0.1 and resolve_params("hrdis", "inpaint-box", image_size=256) == table5
    assert resolve_params("hrdis", "inpaint-box", image_size=64) == {**table5, "lr": 0.02}
    assert resolve_params("reddiff", "sr4", image_size=64)["lr"] == 0.02  # peers share the weights
    assert resolve_params("hrdis", "cs25", image_size=64)["lr"] == 0.02
    assert resolve_params("hrdis", "sr4", image_size=64, lr=0.3)["lr"] == 0.3  # the caller wins
    # RED-diff's own steps win over the preset's
    assert resolve_params("hrdis", "deblur-nonlinear", image_size=64)["steps"] == 300
    assert resolve_params("reddiff", "deblur-nonlinear", image_size=64)["steps"] == 1000
    assert resolve_params("reddiff", "deblur-nonlinear", image_size=64)["lr"] == 0.05
    assert resolve_params("hrdis", "hdr", image_size=64) == {**resolve_params("hrdis", "hdr"), "steps": 300}
    assert resolve_params("reddiff", "hdr", image_size=64)["steps"] == 1000
    noisy = resolve_params("hrdis", "inpaint-box", "gaussian:0.05", image_size=64)
    assert noisy["lr"] == 0.02 and noisy["obs_weight"] == pytest.approx(2.0) and noisy["min_weight"] == 2.0
    assert resolve_params("hrdis", "inpaint-ff20", "poisson:1.0", image_size=64)["obs_weight"] == pytest.approx(0.5)
    assert resolve_params("hrdis", "inpaint-box", "gaussian:0.1")["obs_weight"] == pytest.approx(0.05)  # C.2
    assert resolve_params("hrdis", "sr4", "gaussian:0.05")["obs_weight"] == pytest.approx(0.1)  # C.2
    assert resolve_params("hrdis", "sr4", "gaussian:0.1", image_size=64)["obs_weight"] == pytest.approx(0.2)
    assert resolve_params("hrdis", "cs25", "speckle:0.1", image_size=64)["obs_weight"] == pytest.approx(8.0)
    assert "noisy_obs_factors" not in resolve_params("hrdis", "inpaint-box", image_size=64)
    # solve takes the size from the prior
    x = torch.zeros(1, 3, 64, 64)
    op = operators.Inpainting(torch.ones(64, 64))
    result = solve(op(x), op, GaussianPrior(image_size=64), "hrdis", task="inpaint-box", steps=2)
    assert result.params["lr"] == 0.02
    result = solve(op(x), op, GaussianPrior(), "hrdis", task="inpaint-box", steps=2)
    assert result.params["lr"] == 0.1


# ------------------------------------------------------------------------------------------------
# DDRM's SVDs


SVD_CASES = {
    "inpaint": (lambda: operators.Inpainting(random_pixel_mask(16, 0.5, seed=3)), (16, 16)),
    "inpaint-per-image": (lambda: operators.Inpainting(torch.cat([random_pixel_mask(16, 0.5, seed=s)
                                                                  for s in range(2)])), (16, 16)),
    "avgpool-sr2": (lambda: operators.AveragePoolSR(2), (16, 16)),
    "avgpool-sr4-rect": (lambda: operators.AveragePoolSR(4), (16, 32)),
    "bicubic-sr4": (lambda: operators.BicubicSR(4, 16), (16, 16)),
    "bicubic-sr2-rect": (lambda: operators.BicubicSR(2, (16, 32)), (16, 32)),
    "cs": (lambda: operators.BlockCS(0.25, block=8), (16, 16)),
    "identity": (lambda: operators.Identity(), (16, 16)),
    # pinv_tol 0 keeps every frequency, so the SVD is exact (with the default, see the test below);
    # kernels whose spectrum stays above 1e-2, as U^T divides by it
    "blur-gauss": (lambda: operators.Blur(operators.gaussian_kernel(5, 0.6), pinv_tol=0), (16, 16)),
    "blur-motion-rect": (lambda: operators.Blur(operators.motion_kernel(7, 0.5, seed=1), pinv_tol=0), (16, 32)),
}


@pytest.mark.parametrize("case", list(SVD_CASES))
def test_svd_of_reconstructs_the_operator(case):
    make, size = SVD_CASES[case]
    op = make()
    svd = svd_of(op, size)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, 3, *size), generator=g)
    z = torch.randn((2, 3, size[0] * size[1]), generator=g)
    assert torch.allclose(svd.v(svd.vt(x)), x, atol=1e-5)  # V V^T = I
    assert torch.allclose(svd.vt(svd.v(z)), z, atol=1e-5)  # V^T V = I
    assert torch.allclose(svd.u(svd.singulars * svd.vt(x)), op(x), atol=1e-5)  # A = U S V^T
    assert torch.allclose(svd.ut(op(x)), svd.singulars * svd.vt(x), atol=1e-5)  # U^T A = S V^T
    rank = int((svd.singulars > 0).sum(-1).max())
    if not case.startswith("inpaint"):  # full row rank: one singular value per measurement
        assert rank == op(x[:1, :1]).numel()


def test_blur_svd_leaves_the_frequencies_pinv_drops_to_the_prior():
    op = operators.Blur(operators.gaussian_kernel(9, 2.0))  # default pinv_tol 1e-2
    svd = svd_of(op, (16, 16))
    dropped = svd.singulars == 0
    assert 0 < int(dropped.sum()) < 256
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kept = svd.v(torch.where(dropped, 0.0, svd.vt(x)))  # x without the dropped frequencies
    assert torch.allclose(svd.u(svd.singulars * svd.vt(x)), op(kept), atol=1e-5)
    assert torch.allclose(op.pinv(op(x)), kept, atol=1e-4)  # the same split as the operator's own inverse


def test_svd_of_refuses_operators_without_one():
    with pytest.raises(ValueError, match="DDRM needs an operator with an SVD"):
        svd_of(nonlinear.HDR(), (16, 16))


# ------------------------------------------------------------------------------------------------
# DMPlug's early stopping and oracle


def dip_then_rise(n=300, dip=150, seed=0):
    """Iterates whose spread shrinks until ``dip`` and grows after, like an optimisation that fits the
    image first and the noise later."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.1 + torch.cat([torch.linspace(1, 0, dip), torch.linspace(0, 1, n - dip)])
    return [s * torch.randn((1, 3, 8, 8), generator=g) for s in scale]


def test_es_wmv_stops_after_the_variance_minimum():
    iterates = dip_then_rise()
    window, patience = 20, 30
    stop = es_wmv(iterates, window, patience)
    best, stopped_at = stop.best_step.item(), stop.stop_step.item()
    assert stopped_at == best + patience < len(iterates) - 1  # stopped early, P checks after the minimum
    assert 150 <= best <= 150 + window  # the window of least variance straddles the dip
    assert torch.equal(stop.best, iterates[best])


def test_es_wmv_running_variance_matches_its_definition():
    iterates = dip_then_rise(n=60, dip=30)
    stop = WindowedVarianceStop(window=10, patience=100)
    for k, x in enumerate(iterates):
        stop.update(x)
        if k >= 9:
            expected = windowed_variance(torch.stack(iterates[k - 9: k + 1])).double()
            assert torch.allclose(stop.variance, expected, rtol=1e-5)
    assert not stop.done and stop.stop_step.item() == -1


def test_es_wmv_stops_each_image_on_its_own():
    a, b = dip_then_rise(dip=100, seed=1), dip_then_rise(dip=200, seed=2)
    stop = es_wmv([torch.cat([x, y]) for x, y in zip(a, b)], window=20, patience=30)
    assert stop.done and stop.best_step[0] < stop.best_step[1]


def test_dmplug_reports_the_oracle_only_with_a_reference(rough_prior, problems):
    op, y, _ = problems["sr2"]
    params = dict(steps=12, window=3, patience=2, lr=0.5)
    blind = solve(y, op, rough_prior, "dmplug", **params)
    assert "oracle_image" not in blind.extras and "oracle_step" not in blind.extras
    seen = solve(y, op, rough_prior, "dmplug", reference=rough_prior.mean, **params)
    assert torch.equal(seen.image, blind.image)  # the reference never steers the solve
    assert seen.extras["oracle_image"].shape == y.shape[:2] + (16, 16)
    best = max(range(len(seen.history)), key=lambda k: seen.history[k]["psnr"])
    assert seen.extras["oracle_step"] == [best]
    for result in (blind, seen):
        assert 0 <= result.extras["es_step"][0] <= result.extras["stopped_at"] < 12
        assert result.nfe == 3 * (result.extras["stopped_at"] + 1)


# ------------------------------------------------------------------------------------------------
# DR+DDIM


def test_drddim_noise_split_follows_ddim(rough_prior, problems):
    sched = rough_prior.schedule
    ts = sched.timesteps(50)
    betas = ddim_fresh_fraction(sched, ts, 1.0)
    assert betas[0] == 1.0 and all(0 < b <= 1 for b in betas)
    # b_t^2 / sigma_t^2 from DDIM's own noise scale at each step
    abar = sched.alpha_bar  # float64: alpha_t^2, and sigma_t^2 = 1 - alpha_t^2
    for t_prev, t, b in zip(ts, ts[1:], betas[1:]):
        ddim_var = ((1 - abar[t]) / (1 - abar[t_prev])) * (1 - abar[t_prev] / abar[t])
        assert abs(b - (ddim_var / (1 - abar[t])).item()) < 1e-9
    # eta = 0 keeps only the deterministic part: consistency regularisation (beta = 0) exactly
    op, y, _ = problems["inpaint"]
    assert torch.equal(solve(y, op, rough_prior, "drddim", steps=20, eta=0.0).image,
                       solve(y, op, rough_prior, "hrdis", steps=20, beta=0.0).image)


def test_hrdis_takes_a_per_step_beta_schedule(rough_prior, problems):
    op, y, _ = problems["inpaint"]
    constant = solve(y, op, rough_prior, "hrdis", steps=10, beta=0.3).image
    assert torch.equal(solve(y, op, rough_prior, "hrdis", steps=10, beta=[0.3] * 10).image, constant)
    with pytest.raises(ValueError, match="beta schedule has 9 values for 10 steps"):
        solve(y, op, rough_prior, "hrdis", steps=10, beta=[0.3] * 9)
    with pytest.raises(ValueError, match="beta"):
        solve(y, op, rough_prior, "hrdis", steps=2, beta=[0.3, 1.5])


def test_ddrm_with_noisy_measurements_does_not_fit_the_noise(rough_prior, problems):
    """Told sigma_y, DDRM keeps about sigma_y of residual (the noise) instead of fitting y exactly."""
    from hrdis.noise import GaussianNoise

    op, y, _ = problems["sr2"]
    noisy = GaussianNoise(0.05)(y, seed=0)
    residual = {sigma_y: (op(solve(noisy.repeat(4, 1, 1, 1), op, rough_prior, "ddrm", steps=50, sigma_y=sigma_y).image)
                          - noisy).pow(2).flatten(1).mean(1).sqrt().mean().item() for sigma_y in (0.0, 0.05)}
    assert residual[0.0] < 1e-3 and 0.025 < residual[0.05] < 0.075


def test_pigdm_noisy_guidance_is_the_gaussian_likelihood_gradient():
    """r^2 A^T (r^2 A A^T + sigma_y^2 I)^-1 (y - A x0), against dense matrices; A^+ (y - A x0) as sigma_y -> 0."""
    from hrdis.solvers.pigdm import measurement_correction

    g = torch.Generator().manual_seed(4)
    ops = {"blur": operators.Blur(operators.motion_kernel(5, 0.5, seed=2), pinv_tol=0), "sr2": operators.AveragePoolSR(2),
           "inpaint": operators.Inpainting(random_pixel_mask(8, 0.5, seed=1))}
    for name, op in ops.items():
        x, x0 = torch.randn((2, 1, 1, 8, 8), generator=g, dtype=torch.float64)
        y = op(x)
        basis = torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)
        a = op(basis).reshape(64, -1).T  # A as a matrix: column j is A e_j
        r2, sigma_y = 0.3, 0.1
        want = r2 * a.T @ torch.linalg.solve(r2 * a @ a.T + sigma_y**2 * torch.eye(a.shape[0], dtype=a.dtype),
                                            (y - op(x0)).flatten())
        got = measurement_correction(y, op, sigma_y, x.shape)(x0, torch.tensor(r2))
        assert torch.allclose(got.flatten(), want, atol=1e-5), name  # the SVDs run in float32
        limit = measurement_correction(y, op, 1e-6, x.shape)(x0, torch.tensor(r2))
        assert torch.allclose(limit, measurement_correction(y, op, 0.0, x.shape)(x0, torch.tensor(r2)), atol=1e-4), name
    class Scale(operators.Operator):  # linear, but without an SVD
        def forward(self, x):
            return 2 * x
    with pytest.raises(ValueError, match="PiGDM with sigma_y > 0 needs an operator with an SVD .*, not Scale"):
        measurement_correction(torch.zeros(1, 1, 8, 8), Scale(), 0.1, (1, 1, 8, 8))


def test_pigdm_with_noisy_measurements_does_not_fit_the_noise(rough_prior, problems):
    from hrdis.noise import GaussianNoise

    op, y, _ = problems["sr2"]
    noisy = GaussianNoise(0.05)(y, seed=0)
    residual = {sigma_y: (op(solve(noisy.repeat(4, 1, 1, 1), op, rough_prior, "pigdm", steps=50, sigma_y=sigma_y).image)
                          - noisy).pow(2).flatten(1).mean(1).sqrt().mean().item() for sigma_y in (0.0, 0.05)}
    assert residual[0.0] < 0.01 and 0.025 < residual[0.05] < 0.075


def test_every_method_accepts_the_preset_of_every_task_it_applies_to():
    # A preset key the solver does not take (e.g. phase retrieval's fresh_noise_steps) would only fail
    # deep into a benchmark run; check the whole (method, task) grid against the configs, without solving.
    from hrdis.experiments.bench import applicable
    from hrdis.noise import parse_noise
    from hrdis.solvers import METHODS
    from hrdis.tasks import TASKS

    for method, spec in METHODS.items():
        for task in TASKS:
            if not applicable(method, task, 64):
                continue
            for noise in ("none", "gaussian:0.05"):
                preset = spec.task_params(TASKS[task], parse_noise(noise), 64)
                unknown = set(preset) - set(spec.config.names())
                assert not unknown, f"{method} on {task}@{noise}: preset keys {sorted(unknown)}"
                resolve_params(method, task, parse_noise(noise), image_size=64)  # builds the config


def test_a_new_decomposable_operator_works_with_ddrm_and_pigdm():
    """An operator that carries its own SVD runs with DDRM and PiGDM (its noisy form, which needs the SVD)
    without their code knowing it: a per-pixel gain g, zero on 30% of the pixels (U = V = I, s = g). Noiseless,
    the posterior mean is y / g where g > 0 and the prior mean elsewhere."""
    from hrdis.svd import SVD

    class PixelGain(operators.Operator):
        name = "pixel-gain"

        def __init__(self, gain):
            self.gain = gain

        def forward(self, x):
            return self.gain * x

        def adjoint(self, y):
            return self.gain * y

        def pinv(self, y):
            return torch.where(self.gain > 0, y / self.gain.clamp_min(1e-12), torch.zeros_like(y))

        def svd(self, size):
            s, observed = self.gain.flatten(-2), (self.gain > 0).flatten(-2)
            return SVD(s, vt=lambda x: x.flatten(-2), v=lambda z: z.unflatten(-1, size),
                       ut=lambda y: y.flatten(-2) * observed, u=lambda z: (z * observed).unflatten(-1, size))

    g = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    op = PixelGain(torch.where(g < 0.3, 0.0, g))
    prior = GaussianPrior(0.1, 0.3, image_size=8)
    x = (0.1 + 0.3 * torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    y = op(x)
    posterior_mean = torch.where(op.gain > 0, x, torch.full_like(x, 0.1))
    for method, params in (("ddrm", {}), ("pigdm", {"sigma_y": 1e-3})):
        samples = torch.cat([solve(y, op, prior, method, seed=s, steps=50, **params).image for s in range(16)])
        assert (op(samples) - y).abs().max() < 0.02, method
        error = (samples.mean(0, keepdim=True) - posterior_mean).pow(2).mean().sqrt()
        assert error < 0.08, (method, error)  # prior std 0.3: 16 draws average to within ~0.3 / 4 on the null space
