"""Devices, network precision and CLI runtime flags; every task's operator at 256x256."""

import pytest
import torch
from PIL import Image

from hrdis import load_prior, solve
from hrdis.cli import main
from hrdis.operators import AveragePoolSR
from hrdis.runtime import network_dtype, prior_options, prior_precision, resolve_device
from hrdis.tasks import TASKS, box_size, blur_kernel_size


def test_device_and_precision_resolution():
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert network_dtype("fp32") is None and network_dtype("fp16") is torch.float16
    assert network_dtype("fp32", bf16=True) is torch.bfloat16  # --bf16 stays an alias
    with pytest.raises(ValueError, match="contradicts"):
        network_dtype("fp16", bf16=True)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, capsys, tmp_path, tiny_prior_dir, native):
    caps = {**torch.cpu.get_capabilities(), "avx512_bf16": native, "amx_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    args = type("Args", (), {"device": "cpu", "precision": "bf16"})()
    if native:
        assert prior_options(args)["autocast"] is torch.bfloat16
    else:
        with pytest.warns(UserWarning, match="no native bf16.*use --precision fp32"):
            prior_options(args)
    # Through the CLI the warning is one line on stderr.
    face = tmp_path / "face.png"
    Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(face)
    assert main(["solve", "--input", str(face), "--task", "sr4", "--steps", "1", "--prior", str(tiny_prior_dir),
                 "--device", "cpu", "--precision", "bf16", "--out", str(tmp_path / "r.png")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "native bf16" in line]
    if native:
        assert warned == []
    else:
        assert len(warned) == 1 and warned[0].startswith("hrdis: warning: ")


def test_prior_precision_names_the_autocast_dtype(tiny_prior_dir):
    assert prior_precision(load_prior(tiny_prior_dir)) == "fp32"
    assert prior_precision(load_prior(tiny_prior_dir, autocast=torch.bfloat16)) == "bf16"


def test_low_precision_network_keeps_the_solver_float32(tiny_prior_dir):
    prior = load_prior(tiny_prior_dir, autocast=torch.bfloat16, channels_last=True)
    op = AveragePoolSR(4)
    y = op(torch.rand(1, 3, 32, 32) * 2 - 1)
    result = solve(y, op, prior, "hrdis", steps=3)
    assert result.image.dtype == torch.float32 and torch.isfinite(result.image).all()
    assert prior.eps(torch.randn(1, 3, 32, 32), 500).dtype == torch.float32


def test_cli_runtime_flags(capsys, tmp_path, tiny_prior_dir):
    face = tmp_path / "face.png"
    Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(face)
    code = main(["solve", "--input", str(face), "--task", "sr4", "--steps", "2", "--prior", str(tiny_prior_dir),
                 "--device", "cpu", "--precision", "bf16", "--channels-last", "--out", str(tmp_path / "r.png")])
    assert code == 0, capsys.readouterr().err
    code = main(["sample", "--n", "1", "--steps", "2", "--prior", str(tiny_prior_dir), "--bf16", "--device", "auto",
                 "--out", str(tmp_path / "s.png")])
    assert code == 0, capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["info", "--prior", str(tiny_prior_dir), "--device", "cuda"]) != 0
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_operator_at_256(name):
    """Operators and presets scale with the image: 128 px box, 61 px blur kernel, x16 SR to 16 px."""
    op = TASKS[name].make_operator(256, 0)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    y = op(x)
    assert torch.isfinite(y).all()
    if getattr(op, "linear", False) and name != "phase-retrieval":
        assert op.pinv(y).shape == x.shape
    if name == "sr16":
        assert y.shape == (1, 3, 16, 16)
    if name == "inpaint-box":
        assert box_size(256) == 128 and int((op.mask[0, 0] == 0).sum()) == 128 * 128
    if name.startswith("deblur") and name != "deblur-nonlinear":
        assert y.shape == x.shape and blur_kernel_size(256) == 61 and op.kernel.shape[-2:] == (61, 61)


def test_perf_report_runs_and_refuses_impossible_settings(tiny_prior_dir, capsys):
    from hrdis.experiments import perf

    size = str(load_prior(tiny_prior_dir).image_size)
    args = ["--size", size, "--prior", str(tiny_prior_dir), "--steps", "2", "--batches", "1,2", "--reps", "2",
            "--solves", "2", "--memory-steps", "1", "--threads", "1"]
    assert perf.main(args) == 0
    out = capsys.readouterr().out
    assert "median of 2 solves" in out and "memory allocator" in out and "HRDIS / DPS memory" in out
    assert "| CPU with native bf16 (avx512_bf16 or AMX) | " in out
    ratio = next(line for line in out.splitlines() if line.startswith("| HRDIS time / (N x forward)"))
    assert float(ratio.split("|")[2]) > 0
    assert perf.main(args[:-2] + ["--solves", "0"]) == 2
    assert "--solves and --reps must be at least 1" in capsys.readouterr().err
