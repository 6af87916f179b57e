"""Nonlinear, noisy and blind problems: the operators' shapes, ranges, gradients and invariances;
best-of-N restarts chosen by measurement residual alone; blind gain recovery under a Gaussian prior."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from hrdis import GaussianPrior, resolve_params, solve
from hrdis.cli import main
from hrdis.noise import GaussianNoise, PoissonNoise, SpeckleNoise
from hrdis.nonlinear import (HDR, BlindGainOffset, NonlinearBlur, PhaseRetrieval, camera_response,
                             inverse_camera_response, smooth_veil)
from hrdis.operators import gaussian_kernel, motion_kernel
from hrdis.solvers import METHODS, Method, SolveResult, SolverConfig
from hrdis.tasks import get_task

SIZE = 32
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut64.png"

OPERATORS = {
    "phase-retrieval": lambda: PhaseRetrieval(2.0),
    "hdr": lambda: HDR(),
    "nonlinear-blur": lambda: NonlinearBlur(motion_kernel(9, 0.5, seed=0)),
    "gain-offset": lambda: BlindGainOffset.random_lowlight(SIZE, seed=0),
}


def images(batch=2, seed=0, amplitude=0.9):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((batch, 3, SIZE, SIZE), generator=g) * 2 - 1) * amplitude


@pytest.mark.parametrize("name", list(OPERATORS))
def test_shapes_ranges_and_displayable_measurements(name):
    op = OPERATORS[name]()
    x = images()
    y = op(x)
    expected = (2, 3, SIZE + 2 * 8, SIZE + 2 * 8) if name == "phase-retrieval" else x.shape
    assert y.shape == expected and torch.isfinite(y).all()
    if name == "phase-retrieval":
        assert (y >= 0).all()
    else:
        assert y.min() >= -1 and y.max() <= 1
    assert op.pinv(y).shape == x.shape
    shown = op.measurement_image(y)
    assert shown.shape[:2] == y.shape[:2] and shown.min() >= -1 and shown.max() <= 1
    assert op.linear is False


@pytest.mark.parametrize("name", list(OPERATORS))
def test_gradients_flow_through_every_operator(name):
    op = OPERATORS[name]()
    x = (images(amplitude=0.4)).requires_grad_(True)  # |2x| < 1: HDR's clip is not saturated
    op(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().min() > 0


def test_hdr_gradient_vanishes_where_it_saturates():
    x = torch.tensor([0.9, -0.9, 0.2]).view(1, 1, 1, 3).requires_grad_(True)
    HDR()(x).sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 0.0, 2.0]
    assert torch.allclose(HDR().pinv(HDR()(x)), torch.tensor([0.5, -0.5, 0.2]).view(1, 1, 1, 3))


@pytest.mark.parametrize("oversample, size, pad", [(2.0, 64, 16), (2.0, 256, 64), (1.0, 64, 8), (2.0, 32, 8),
                                                   (0.0, 32, 0)])
def test_phase_retrieval_padding(oversample, size, pad):
    op = PhaseRetrieval(oversample)
    assert op.padding(size) == pad
    assert op(torch.zeros(1, 1, size, size)).shape[-1] == size + 2 * pad
    assert op.image_size(size + 2 * pad) == size


def test_phase_retrieval_magnitudes_ignore_shift_flip_and_sign():
    """|F| loses the phase: a shift inside the padding, a 180-degree rotation and -x all give the same y
    (which is why the prior, and restarts, must pick among them). Parseval: ||y|| = ||x||."""
    op = PhaseRetrieval(2.0)
    x = torch.zeros(1, 3, SIZE, SIZE)
    x[..., 8:24, 8:24] = images(1)[..., :16, :16]
    y = op(x)
    shifted = torch.roll(x, shifts=(3, -5), dims=(-2, -1))
    for variant in (shifted, torch.flip(x, dims=(-2, -1)), -x):
        assert torch.allclose(op(variant), y, atol=1e-4)
    assert not torch.allclose(op(x + 0.1), y, atol=1e-2)
    assert torch.allclose(y.pow(2).sum(), x.pow(2).sum(), rtol=1e-4)


def test_phase_retrieval_rejects_bad_settings_and_measurements():
    with pytest.raises(ValueError, match="oversample"):
        PhaseRetrieval(-1.0)
    with pytest.raises(ValueError, match="square"):
        PhaseRetrieval()(torch.zeros(1, 3, 32, 48))


def test_camera_response_is_inverted_exactly_and_bounded():
    v = torch.linspace(0, 1, 101)
    assert torch.allclose(camera_response(inverse_camera_response(v)), v, atol=1e-5)
    assert abs(camera_response(torch.tensor(1.0)).item() - 1) < 1e-6 and camera_response(torch.tensor(0.0)) == 0


def test_nonlinear_blur_is_identity_for_a_delta_and_nonlinear_otherwise():
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1
    x = images()
    assert torch.allclose(NonlinearBlur(delta, knee=1.0)(x), x, atol=1e-4)
    op = NonlinearBlur(gaussian_kernel(7, 1.5))
    a, b = images(seed=1), images(seed=2)
    assert not torch.allclose(op((a + b) / 2), (op(a) + op(b)) / 2, atol=1e-3)
    assert torch.equal(op(a), op(a))  # the kernel is fixed: the same x always gives the same y


def test_nonlinear_blur_saturates_highlights_softly():
    op = NonlinearBlur(gaussian_kernel(3, 0.5), knee=0.8, exposure=2.0)
    y = op(torch.full((1, 3, 8, 8), 0.8))
    assert 0.9 < y.min() and y.max() < 1  # bright, compressed, never clipped flat


def test_gain_offset_simulates_and_inverts():
    op = BlindGainOffset.random_lowlight(SIZE, seed=3)
    assert 0.25 <= op.gain.item() <= 0.35
    x = images()
    assert torch.allclose(op.pinv(op(x)), x, atol=1e-5)
    assert op(x).mean() < x.mean()  # darker
    veil = smooth_veil(SIZE, seed=3)
    assert veil.shape == (1, 3, SIZE, SIZE) and veil.min() >= 0 and veil.max() < 0.1
    assert veil.diff(dim=-1).abs().max() < 0.01  # smooth
    with pytest.raises(ValueError, match="gain"):
        BlindGainOffset(-0.3)


@pytest.mark.parametrize("name", ["hdr", "nonlinear-blur", "gain-offset"])
@pytest.mark.parametrize("noise", [GaussianNoise(0.1), PoissonNoise(1.0), SpeckleNoise(0.1)], ids=lambda n: n.spec())
def test_image_like_nonlinear_measurements_take_every_noise(name, noise):
    y = OPERATORS[name]()(images())
    noisy = noise(y, seed=0)
    assert noisy.shape == y.shape and not torch.equal(noisy, y)


def face(size=SIZE):
    from hrdis.images import pil_to_tensor

    return pil_to_tensor(Image.open(EXAMPLE).resize((size, size)))


def test_phase_retrieval_takes_gaussian_noise_and_refuses_intensity_noise():
    """Refused by range: a photo's magnitudes reach far beyond [-1, 1] (its mean alone gives
    |F|(0) = |mean| n^2 / (n + 2p)), though a zero-mean white-noise "image" would slip through."""
    y = PhaseRetrieval()(face())
    assert GaussianNoise(0.05)(y, seed=0).shape == y.shape
    for noise in (PoissonNoise(1.0), SpeckleNoise(0.1)):
        with pytest.raises(ValueError, match="gaussian"):
            noise(y, seed=0)


# --------------------------------------------------------------------------------------------------
# Restarts


class Untouchable(torch.Tensor):
    """A reference that fails any torch operation: proves the selection never looks at it."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the reference was used ({getattr(func, '__name__', func)})")


# ERRORS[k][b]: the constant error of restart k (seed 10 + 1000 k) on image b; the residual is its size.
ERRORS = [[0.30, 0.05], [0.20, 0.40], [0.10, 0.25]]


@dataclass(frozen=True)
class StubConfig(SolverConfig):
    steps: int = 1


@pytest.fixture
def stub_method(monkeypatch):
    calls = []

    def stub(y, operator, prior, config, *, seed, reference, progress):
        calls.append({"seed": seed, **config.as_dict()})
        error = torch.tensor(ERRORS[(seed - 10) // 1000]).view(-1, 1, 1, 1)  # restart k: seed + 1000 k
        return SolveResult(image=y + error, init=y.clone(), history=[{"seed": seed}], nfe=5)

    monkeypatch.setitem(METHODS, "stub", Method("stub", stub, StubConfig, "a test stub"))
    return calls


def test_restarts_keep_the_smallest_residual_per_image(stub_method):
    from hrdis.operators import Identity

    y = torch.zeros(2, 3, 4, 4)
    result = solve(y, Identity(), GaussianPrior(), "stub", seed=10, restarts=3, steps=5,
                   reference=torch.zeros(2, 3, 4, 4).as_subclass(Untouchable))
    assert [c["seed"] for c in stub_method] == [10, 1010, 2010]
    assert all("restarts" not in c for c in stub_method) and all(c["steps"] == 5 for c in stub_method)
    assert result.extras["chosen_restart"] == [2, 0] and result.extras["chosen_seed"] == [2010, 10]
    assert torch.allclose(result.image[:, 0, 0, 0], torch.tensor([0.10, 0.05]))
    assert torch.allclose(torch.tensor(result.extras["restart_residuals"]), torch.tensor(ERRORS).T, atol=1e-6)
    assert result.nfe == 15 and result.params["restarts"] == 3 and result.method == "stub"


def test_one_restart_is_a_plain_solve(stub_method):
    from hrdis.operators import Identity

    result = solve(torch.zeros(2, 3, 4, 4), Identity(), GaussianPrior(), "stub", seed=11)
    assert len(stub_method) == 1 and "restart_residuals" not in result.extras
    assert "twin" not in result.extras and result.nfe == 5  # Identity has no twins: nothing to choose
    with pytest.raises(ValueError, match="restarts"):
        solve(torch.zeros(2, 3, 4, 4), Identity(), GaussianPrior(), "stub", seed=11, restarts=0)


def test_phase_retrieval_preset_runs_restarts_through_hrdis():
    params = resolve_params("hrdis", "phase-retrieval")
    assert params.items() >= dict(steps=500, obs_weight=0.5, reg_weight=0.25, lr=0.7, fresh_noise_steps=250,
                                  beta=0.2).items()
    assert get_task("phase-retrieval").restarts == 4
    op = PhaseRetrieval()
    prior = GaussianPrior(std=0.3, image_size=16)
    y = op(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5)
    result = solve(y, op, prior, task="phase-retrieval", steps=4, restarts=2)
    assert result.nfe == 8 + 4 * 12 and len(result.extras["restart_residuals"][0]) == 2  # + choose_twin's 4 x 12
    assert result.extras["chosen_restart"][0] == min(range(2), key=lambda k: result.extras["restart_residuals"][0][k])


def test_phase_retrieval_equivalents_share_the_measurement():
    op = PhaseRetrieval(2.0)
    x = images(2)
    candidates = op.equivalents(x)
    assert len(candidates) == 4 and candidates[0] is x
    assert all(not torch.allclose(c, x) for c in candidates[1:])
    for c in candidates:
        assert torch.allclose(op(c), op(x), atol=1e-4)


@pytest.mark.parametrize("choose", [True, False])
def test_solve_lets_the_prior_choose_among_phase_retrieval_twins(monkeypatch, choose):
    """The solver lands on the negative of image 0 and the rotation of image 1; their measurements are
    the truth's, so only the prior can tell. Under a Gaussian prior around the truth the exact denoising
    error grows with ||x - mean||^2, so the truth must win for both."""
    g = torch.Generator().manual_seed(0)
    mean = torch.rand((2, 3, 16, 16), generator=g) - 0.5
    truth = mean + 0.05 * torch.randn(mean.shape, generator=g)
    landed = torch.stack([-truth[0], truth[1].flip(-2, -1)])

    def stub(y, operator, prior, config, *, seed, reference, progress):
        return SolveResult(image=landed.clone(), init=landed.clone(), history=[], nfe=5)

    monkeypatch.setitem(METHODS, "stub", Method("stub", stub, StubConfig, "a test stub"))
    op = PhaseRetrieval(2.0)
    result = solve(op(truth), op, GaussianPrior(mean=mean, std=0.05, image_size=16), "stub", choose_twins=choose)
    if choose:
        assert result.extras["twin"] == [1, 2]  # the negative of -x, the rotation of the rotation
        assert torch.allclose(result.image, truth, atol=1e-6) and result.nfe == 5 + 4 * 12
    else:
        assert torch.equal(result.image, landed) and "twin" not in result.extras


# --------------------------------------------------------------------------------------------------
# Blind gain and offset


@pytest.fixture(scope="module")
def blind_problem():
    """A 16x16 Gaussian prior with a rough mean (so the image has detail that fixes f), a draw from it,
    darkened by f = 0.3 and veiled."""
    g = torch.Generator().manual_seed(0)
    mean = torch.rand((1, 3, 16, 16), generator=g) - 0.5
    prior = GaussianPrior(mean=mean, std=0.05, image_size=16)
    truth = (mean + 0.05 * torch.randn(mean.shape, generator=g)).clamp(-1, 1)
    return prior, truth


# The exact prior has no pull towards a flat mean at large t, so f and M may be estimated at every step
# (the paper's schedule, estimate_below = T) and f is recovered within 10%; the default estimates them
# only for t < 100 (30 of 300 steps), which a trained prior needs, and gets within 15%.
@pytest.mark.parametrize("gain", [0.3, 0.15])
@pytest.mark.parametrize("estimate_below, tolerance", [(1000, 0.1), (100, 0.15)])
def test_blind_solver_recovers_the_gain(blind_problem, gain, estimate_below, tolerance):
    prior, truth = blind_problem
    op = BlindGainOffset(gain, smooth_veil(16, seed=1))
    result = solve(op(truth), op, prior, "hrdis-blind", steps=300, seed=0, reference=truth,
                   estimate_below=estimate_below)
    estimate = result.extras["gain"][0]
    assert abs(estimate - gain) < tolerance * gain, f"estimated f = {estimate:.3f}, true {gain}"
    assert abs(result.history[0]["gain"][0] - gain) > 0.1 * gain  # the start was off: the solver found it
    assert (result.image - truth).pow(2).mean().sqrt() < (result.init - truth).pow(2).mean().sqrt() / 2
    assert result.extras["offset"].shape == truth.shape and result.extras["residual"][0] < 0.02


def test_blind_solver_never_reads_the_operators_own_gain_and_offset(blind_problem):
    prior, truth = blind_problem
    op = BlindGainOffset(0.3, smooth_veil(16, seed=1))
    y = op(truth)
    told = solve(y, op, prior, "hrdis-blind", steps=20)
    not_told = solve(y, BlindGainOffset(), prior, "hrdis-blind", steps=20)
    assert torch.equal(told.image, not_told.image)
    with pytest.raises(ValueError, match="BlindGainOffset"):
        solve(y, HDR(), prior, "hrdis-blind", steps=2)
    with pytest.raises(ValueError, match="estimate_below"):
        solve(y, op, prior, "hrdis-blind", steps=2, estimate_below=0)


# --------------------------------------------------------------------------------------------------
# Tasks and the command line


@pytest.mark.parametrize("task", ["phase-retrieval", "hdr", "deblur-nonlinear", "blind-lowlight"])
def test_tasks_build_their_operators(task):
    a, b = get_task(task).make_operator(64, 9901), get_task(task).make_operator(64, 9901)
    x = images(1).repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert torch.equal(a(x), b(x))  # fixed per image seed


@pytest.mark.parametrize("task, method, noise", [("phase-retrieval", "hrdis", "gaussian:0.05"),
                                                 ("hdr", "hrdis", "poisson:1.0"),
                                                 ("deblur-nonlinear", "hrdis", "speckle:0.1"),
                                                 ("blind-lowlight", "hrdis-blind", "gaussian:0.1")])
def test_command_line_solves_nonlinear_tasks(capsys, tmp_path, tiny_prior_dir, task, method, noise):
    path = tmp_path / "face32.png"
    Image.open(EXAMPLE).resize((32, 32)).save(path)
    code = main(["solve", "--input", str(path), "--task", task, "--method", method, "--noise", noise, "--steps", "2",
                 "--prior", str(tiny_prior_dir), "--out", str(tmp_path / "r.png"), "--grid", str(tmp_path / "g.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert Image.open(tmp_path / "r.png").size == (32, 32) and "PSNR" in out
