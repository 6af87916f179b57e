"""The command line: it writes what it says, and bad input gets one clear line and no partial output."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrdis.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut64.png"


@pytest.fixture
def face32(tmp_path):
    """The bundled example face at the tiny test prior's 32x32."""
    path = tmp_path / "face32.png"
    Image.open(EXAMPLE).resize((32, 32)).save(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("task", ["inpaint-box", "sr4", "cs25"])
def test_solve_simulated_writes_result_grid_and_history(capsys, tmp_path, tiny_prior_dir, face32, task):
    out, grid, hist = tmp_path / "r.png", tmp_path / "g.png", tmp_path / "h.json"
    code, stdout, err = run(capsys, "solve", "--input", face32, "--task", task, "--steps", 3, "--prior", tiny_prior_dir,
                            "--out", out, "--grid", grid, "--history", hist)
    assert code == 0, err
    assert Image.open(out).size == (32, 32)
    assert Image.open(grid).size[0] > 4 * 32  # truth | measurement | init | result
    assert len(json.loads(hist.read_text())["history"]) == 3
    assert "PSNR" in stdout


def test_solve_observed_with_mask_and_scale(capsys, tmp_path, tiny_prior_dir, face32):
    mask = np.full((32, 32), 255, np.uint8)
    mask[8:20, 8:20] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, _, err = run(capsys, "solve", "--observed", face32, "--mask", tmp_path / "mask.png", "--steps", 2,
                       "--prior", tiny_prior_dir, "--out", tmp_path / "a.png")
    assert code == 0, err and (tmp_path / "a.png").is_file()
    Image.open(face32).resize((8, 8)).save(tmp_path / "low.png")
    code, _, err = run(capsys, "solve", "--observed", tmp_path / "low.png", "--scale", 4, "--steps", 2,
                       "--prior", tiny_prior_dir, "--out", tmp_path / "b.png")
    assert code == 0, err
    assert Image.open(tmp_path / "b.png").size == (32, 32)


def test_same_seed_same_png(capsys, tmp_path, tiny_prior_dir, face32):
    args = ["solve", "--input", face32, "--task", "inpaint-ff20", "--steps", 3, "--prior", tiny_prior_dir]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run(capsys, *args, "--seed", seed, "--out", tmp_path / f"{name}.png")[0] == 0
    a, b, c = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sequential_restarts_give_the_batched_result(capsys, tmp_path, tiny_prior_dir, face32):
    args = ["solve", "--input", face32, "--task", "sr4", "--steps", 3, "--restarts", 3, "--prior", tiny_prior_dir]
    assert run(capsys, *args, "--out", tmp_path / "batched.png")[0] == 0
    assert run(capsys, *args, "--sequential-restarts", "--out", tmp_path / "sequential.png")[0] == 0
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")).astype(int) for n in ("batched", "sequential"))
    assert np.abs(a - b).max() <= 1  # batched convolutions may round differently


def _bad_inputs(tmp_path, face32, tiny_prior_dir):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    big = tmp_path / "big.png"
    Image.open(face32).resize((48, 48)).save(big)
    gray = tmp_path / "gray.png"
    Image.open(face32).convert("L").save(gray)
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes(b"garbage")
    base = ["solve", "--task", "inpaint-box", "--prior", tiny_prior_dir]
    return {
        "missing file": (base + ["--input", tmp_path / "nope.png"], "not found"),
        "not an image": (base + ["--input", text], "not a readable image"),
        "wrong size": (base + ["--input", big], "48x48"),
        "beta": (base + ["--input", face32, "--beta", 2], "beta"),
        "steps": (base + ["--input", face32, "--steps", 0], "steps"),
        "noise spec": (base + ["--input", face32, "--noise", "laplace:3"], "noise"),
        "corrupt checkpoint": (["solve", "--task", "inpaint-box", "--input", face32, "--prior", bad_ckpt,
                                "--prior-config", Path(tiny_prior_dir) / "config.json"], "checkpoint"),
        "unknown task": (["solve", "--task", "nope", "--input", face32, "--prior", tiny_prior_dir], "unknown task"),
    }


@pytest.mark.parametrize("case", ["missing file", "not an image", "wrong size", "beta", "steps", "noise spec",
                                  "corrupt checkpoint", "unknown task"])
def test_bad_input_one_line_error_and_no_output(capsys, tmp_path, tiny_prior_dir, face32, case):
    argv, message = _bad_inputs(tmp_path, face32, tiny_prior_dir)[case]
    out = tmp_path / "out.png"
    code, _, err = run(capsys, *argv, "--out", out)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("hrdis: error")]
    assert len(lines) == 1 and message.lower() in lines[0].lower(), err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_grayscale_input_is_promoted_to_rgb(capsys, tmp_path, tiny_prior_dir, face32):
    gray = tmp_path / "gray.png"
    Image.open(face32).convert("L").save(gray)
    code, _, err = run(capsys, "solve", "--input", gray, "--task", "sr4", "--steps", 2, "--prior", tiny_prior_dir,
                       "--out", tmp_path / "o.png")
    assert code == 0, err


def test_info_lists_tasks_methods_and_prior(capsys, tiny_prior_dir):
    code, out, _ = run(capsys, "info", "--prior", tiny_prior_dir)
    assert code == 0
    for word in ("inpaint-box", "sr4", "cs25", "hrdis", "reddiff", "cr", "ADM UNet"):
        assert word in out


def test_sample_writes_grid(capsys, tmp_path, tiny_prior_dir):
    code, _, err = run(capsys, "sample", "--n", 4, "--steps", 3, "--prior", tiny_prior_dir, "--out", tmp_path / "s.png")
    assert code == 0, err
    width, height = Image.open(tmp_path / "s.png").size
    assert width == 2 * 260 + 4 and height > width  # 2 x 2 panels of 256 px, labelled


def test_method_that_does_not_fit_the_operator_is_refused(capsys, tmp_path, tiny_prior_dir, face32):
    code, _, err = run(capsys, "solve", "--input", face32, "--task", "hdr", "--method", "ddrm",
                       "--prior", tiny_prior_dir, "--out", tmp_path / "o.png")
    assert code == 2 and "needs an operator with an SVD" in err
    code, _, err = run(capsys, "solve", "--input", face32, "--task", "inpaint-box", "--method", "bicubic",
                       "--prior", tiny_prior_dir, "--out", tmp_path / "o.png")
    assert code == 2 and "super-resolution" in err and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("method", ["dps", "ddrm", "pigdm", "dmplug", "ddim", "drddim", "reddiff", "cr", "tv"])
def test_every_method_runs_from_the_cli(capsys, tmp_path, tiny_prior_dir, face32, method):
    code, _, err = run(capsys, "solve", "--input", face32, "--task", "sr4", "--method", method, "--steps", 3,
                       "--prior", tiny_prior_dir, "--out", tmp_path / "o.png")
    assert code == 0, err
    assert Image.open(tmp_path / "o.png").size == (32, 32)
