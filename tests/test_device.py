"""Every method on an accelerator restores what it restores on the CPU: ``pytest --device cuda tests/test_device.py``.

Solvers draw their noise from per-image CPU generators (``hrdis.randomness``), so a solve on another device
sees the same draws; with TF32 off both sides compute in float32 and differ by the order of operations only.
Without ``--device`` (or with ``--device cpu``) these tests are skipped.
"""

import pytest
import torch

from hrdis import load_prior, solve
from hrdis.cli import main
from hrdis.experiments.bench import applicable
from hrdis.solvers import METHODS
from hrdis.tasks import get_task

TASKS = ["inpaint-box", "sr4", "cs25", "deblur-gauss", "deblur-nonlinear", "phase-retrieval", "hdr", "blind-lowlight"]
CASES = [(m, t) for m in METHODS for t in TASKS if applicable(m, t, 32)]
TOLERANCE = 2e-3  # on images in [-1, 1]; a handful of float32 steps


@pytest.fixture
def accelerator(device):
    if device.type == "cpu":
        pytest.skip("give an accelerator with --device (e.g. --device cuda)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            pytest.fail("--device cuda, but this PyTorch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device


def restore(prior, method, task, device, noise=None):
    op = get_task(task).make_operator(32, 0)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    y = op(x)
    if noise:
        y = y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(4))
    steps = {} if method == "bicubic" else {"steps": 4}
    result = solve(y.to(device), op.to(device), prior.to(device), method, task=task, noise=noise, seed=0,
                   restarts=1, choose_twins=False, **steps)
    return result.image.cpu()


@pytest.mark.parametrize("method,task", CASES)
def test_method_on_the_accelerator_matches_the_cpu(tiny_prior_dir, accelerator, method, task):
    prior = load_prior(tiny_prior_dir)
    on_cpu = restore(prior, method, task, "cpu")
    on_device = restore(prior, method, task, accelerator)
    assert torch.isfinite(on_device).all()
    assert (on_device - on_cpu).abs().max() < TOLERANCE


@pytest.mark.parametrize("method", ["ddnm-plus", "pigdm", "ddrm", "diffpir", "hrdis", "dps"])
def test_noisy_measurements_on_the_accelerator_match_the_cpu(tiny_prior_dir, accelerator, method):
    prior = load_prior(tiny_prior_dir)
    on_cpu = restore(prior, method, "sr4", "cpu", noise="gaussian:0.05")
    on_device = restore(prior, method, "sr4", accelerator, noise="gaussian:0.05")
    assert (on_device - on_cpu).abs().max() < TOLERANCE


def test_cli_solve_on_the_accelerator_writes_what_the_cpu_writes(tiny_prior_dir, accelerator, tmp_path):
    import numpy as np
    from PIL import Image

    face = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(face)
    outputs = {}
    for dev in ("cpu", str(accelerator)):
        out = tmp_path / f"{dev.replace(':', '_')}.png"
        assert main(["solve", "--input", str(face), "--task", "inpaint-box", "--steps", "4", "--prior",
                     str(tiny_prior_dir), "--device", dev, "--no-check", "--out", str(out)]) == 0
        outputs[dev] = np.asarray(Image.open(out), dtype=np.int16)
    cpu, other = outputs.values()
    assert np.abs(cpu - other).max() <= 1  # one grey level of rounding
