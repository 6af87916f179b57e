"""Restoring one's own image from the command line: sizes, presets, output paths, warnings.

Each case goes through ``hrdis.cli.main`` and checks the exit code, that an error or warning is one line
without a traceback, and that a failed run leaves no file behind."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hrdis.cli import main
from hrdis.tasks import TASKS, get_task

from conftest import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut64.png"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, kind: str) -> str:
    """The single ``hrdis: KIND`` line of stderr (and no traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"hrdis: {kind}")]
    assert len(lines) == 1, err
    return lines[0]


def preset_line(err: str) -> dict:
    """The parameters the CLI printed it would use."""
    line = next(line for line in err.splitlines() if line.startswith("hrdis: ") and " with {" in line)
    return json.loads(line.split(" with ", 1)[1])


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


@pytest.fixture
def face64(tmp_path):
    path = tmp_path / "face64.png"
    Image.open(EXAMPLE).convert("RGB").save(path)
    return path


def box_mask_png(path, size: int, lo: int, hi: int):
    mask = np.full((size, size), 255, np.uint8)
    mask[lo:hi, lo:hi] = 0
    Image.fromarray(mask).save(path)
    return path


# ---------------------------------------------------------------------------------------------- sizes

def test_size_errors_name_an_existing_flag_and_the_expected_size(capsys, tmp_path, tiny_prior_dir, face64):
    Image.open(face64).resize((10, 10)).save(tmp_path / "low.png")
    cases = [
        (["--observed", tmp_path / "low.png", "--scale", 4], "give a 8x8 image for x4 at 32 px"),
        (["--input", face64, "--task", "sr4"], "give a 32x32 image"),
        (["--observed", face64, "--task", "denoise"], "give a 32x32 image"),
        (["--observed", face64, "--mask", box_mask_png(tmp_path / "m.png", 64, 16, 40)], "give a 32x32 image"),
    ]
    for argv, expected in cases:
        code, _, err = run(capsys, "solve", *argv, "--prior", tiny_prior_dir, "--out", tmp_path / "o.png")
        line = one_line(err, "error")
        assert code == 2 and expected in line and "--resize" in line and "--crop" not in line, line
    assert not (tmp_path / "o.png").exists() and not list(tmp_path.glob(".o.png*"))


def test_resize_with_mask_equals_resizing_by_hand(capsys, tmp_path, tiny_prior_dir, face64):
    """A 64 px photo and its mask, with --resize on the 32 px prior, restore as the 32 px versions made by hand."""
    box_mask_png(tmp_path / "mask64.png", 64, 16, 40)  # whole 2x2 blocks: any sensible resize gives the same hole
    Image.open(face64).resize((32, 32), Image.Resampling.LANCZOS).save(tmp_path / "face32.png")
    Image.open(tmp_path / "mask64.png").resize((32, 32), Image.Resampling.NEAREST).save(tmp_path / "mask32.png")
    common = ["--steps", 2, "--prior", tiny_prior_dir]
    assert run(capsys, "solve", "--observed", face64, "--mask", tmp_path / "mask64.png", "--resize", *common,
               "--out", tmp_path / "auto.png")[0] == 0
    assert run(capsys, "solve", "--observed", tmp_path / "face32.png", "--mask", tmp_path / "mask32.png", *common,
               "--out", tmp_path / "hand.png")[0] == 0
    assert np.array_equal(png(tmp_path / "auto.png"), png(tmp_path / "hand.png"))


def test_resize_with_a_low_resolution_observation_equals_resizing_by_hand(capsys, tmp_path, tiny_prior_dir, face64):
    Image.open(face64).resize((20, 20)).save(tmp_path / "low20.png")
    Image.open(tmp_path / "low20.png").resize((8, 8), Image.Resampling.LANCZOS).save(tmp_path / "low8.png")
    common = ["--scale", 4, "--steps", 2, "--prior", tiny_prior_dir]
    code, _, err = run(capsys, "solve", "--observed", tmp_path / "low20.png", "--resize", *common,
                       "--out", tmp_path / "auto.png")
    assert code == 0, err
    assert run(capsys, "solve", "--observed", tmp_path / "low8.png", *common, "--out", tmp_path / "hand.png")[0] == 0
    assert Image.open(tmp_path / "auto.png").size == (32, 32)
    assert np.array_equal(png(tmp_path / "auto.png"), png(tmp_path / "hand.png"))


def test_resize_crops_a_non_square_image_and_its_mask_alike(capsys, tmp_path, tiny_prior_dir, face64):
    wide = Image.new("RGB", (96, 64), "white")
    wide.paste(Image.open(face64), (16, 0))
    wide.save(tmp_path / "wide.png")
    mask = np.full((64, 96), 255, np.uint8)
    mask[16:40, 32:56] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, _, err = run(capsys, "solve", "--observed", tmp_path / "wide.png", "--mask", tmp_path / "mask.png",
                       "--resize", "--steps", 2, "--prior", tiny_prior_dir, "--out", tmp_path / "o.png")
    assert code == 0, err
    from hrdis import masks
    m = masks.load_mask(tmp_path / "mask.png", 32, resize_from=(96, 64))
    hole = (m[0, 0] == 0).nonzero()
    assert hole[:, 0].min() == 8 and hole[:, 0].max() == 19 and hole[:, 1].min() == 8 and hole[:, 1].max() == 19
    Image.fromarray(mask[:32]).save(tmp_path / "small.png")
    code, _, err = run(capsys, "solve", "--observed", tmp_path / "wide.png", "--mask", tmp_path / "small.png",
                       "--resize", "--steps", 2, "--prior", tiny_prior_dir, "--out", tmp_path / "p.png")
    assert code == 2 and "draw the mask at the image's size" in one_line(err, "error")
    assert not (tmp_path / "p.png").exists()


# --------------------------------------------------------------------------------------------- presets

def test_scale_and_mask_get_the_tuned_preset_of_the_equivalent_task():
    """At 64 px, --scale 4 and a bare --mask resolve what --task sr4 and --task inpaint-* do (lr 0.02)."""
    from hrdis.tasks import observation_problem

    for kwargs, name, like in ((dict(scale=4), "sr4", "sr4"), (dict(scale=2), "sr2", "sr4"),
                               (dict(mask=torch.ones(1, 1, 64, 64)), "inpaint", "inpaint-box")):
        task, _ = observation_problem(64, **kwargs)
        assert task.name == name
        assert task.preset_for(64) == get_task(like).preset_for(64) and task.preset_for(64)["lr"] == 0.02
    task, operator = observation_problem(64, scale=32)  # no task is named sr32: SR's presets, its own operator
    assert task.name == "sr32" and operator.scale == 32 and task.preset_for(64)["lr"] == 0.02
    for name in ("cs25", "phase-retrieval"):  # their operators say their measurements are not pictures
        with pytest.raises(ValueError, match=f"cannot restore {name}: its measurement is not a picture"):
            observation_problem(64, task=name)


def test_scale_prints_the_tuned_preset_with_the_bundled_prior(capsys, tmp_path, face64):
    Image.open(face64).resize((16, 16)).save(tmp_path / "low16.png")
    box_mask_png(tmp_path / "mask.png", 64, 20, 44)
    runs = {"scale": ["--observed", tmp_path / "low16.png", "--scale", 4],
            "task": ["--observed", tmp_path / "low16.png", "--task", "sr4"],
            "mask": ["--observed", face64, "--mask", tmp_path / "mask.png"],
            "mask+task": ["--observed", face64, "--mask", tmp_path / "mask.png", "--task", "inpaint-ff20"]}
    used = {}
    for name, argv in runs.items():
        code, _, err = run(capsys, "solve", *argv, "--steps", 1, "--no-check", "--out", tmp_path / f"{name}.png")
        assert code == 0, err
        used[name] = preset_line(err)
    assert used["scale"] == used["task"] and used["scale"]["lr"] == 0.02
    assert used["mask"] == used["mask+task"] and used["mask"]["lr"] == 0.02


# ---------------------------------------------------------------------------------------------- output

@pytest.mark.parametrize("flag", ["--out", "--grid", "--history"])
def test_bad_output_paths_fail_before_the_prior_is_loaded(capsys, tmp_path, face64, flag):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    for bad, words in ((tmp_path / "adir", "is a folder"), (tmp_path / "afile" / "r.png", "is a file")):
        paths = {"--out": tmp_path / "r.png", flag: bad}
        # a missing prior would be the error if the prior were loaded first
        code, _, err = run(capsys, "solve", "--input", face64, "--task", "sr4", "--prior", tmp_path / "no-prior",
                           *[x for kv in paths.items() for x in kv])
        line = one_line(err, "error")
        assert code == 2 and flag in line and words in line and "prior" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "face64.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_folder_fails_before_the_solve(capsys, tmp_path, face64):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run(capsys, "solve", "--input", face64, "--task", "sr4", "--prior", tmp_path / "no-prior",
                       "--out", locked / "r.png")
    assert code == 2 and "not writable" in one_line(err, "error")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_respect_the_umask_and_missing_folders_are_made(capsys, tmp_path, tiny_prior_dir, umask):
    face32 = tmp_path / "face32.png"
    Image.open(EXAMPLE).resize((32, 32)).save(face32)
    new = tmp_path / "new" / "sub"
    old = os.umask(umask)
    try:
        code, _, err = run(capsys, "solve", "--input", face32, "--task", "inpaint-box", "--steps", 2,
                           "--prior", tiny_prior_dir, "--out", new / "r.png", "--grid", new / "g.png",
                           "--history", new / "h.json")
        assert code == 0, err
        code, _, err = run(capsys, "sample", "--n", 1, "--steps", 2, "--prior", tiny_prior_dir, "--out", new / "s.png")
        assert code == 0, err
    finally:
        os.umask(old)
    for name in ("r.png", "g.png", "h.json", "s.png"):
        assert stat.S_IMODE((new / name).stat().st_mode) == 0o666 & ~umask, name


def test_help_says_missing_folders_are_created(capsys):
    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    assert "folders are created" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------------------------------------- grids

def test_grid_panels_are_enlarged_and_labelled(capsys, tmp_path, tiny_prior_dir):
    face32 = tmp_path / "face32.png"
    Image.open(EXAMPLE).resize((32, 32)).save(face32)
    code, stdout, err = run(capsys, "solve", "--input", face32, "--task", "sr4", "--steps", 2,
                            "--prior", tiny_prior_dir, "--out", tmp_path / "r.png", "--grid", tmp_path / "g.png")
    assert code == 0, err
    width, height = Image.open(tmp_path / "g.png").size
    assert width >= 4 * 256 and height > 256  # four panels of at least 256 px, labels above
    assert "truth | measurement | start | hrdis" in stdout


# ------------------------------------------------------------------------------------- steps and small things

def test_few_steps_warn_for_methods_whose_step_sizes_follow_their_steps(capsys, tmp_path, tiny_prior_dir):
    face32 = tmp_path / "face32.png"
    Image.open(EXAMPLE).resize((32, 32)).save(face32)
    base = ["solve", "--input", face32, "--task", "sr4", "--prior", tiny_prior_dir, "--out", tmp_path / "o.png"]
    code, _, err = run(capsys, *base, "--method", "dps", "--steps", 2)  # DPS's preset: 1000 steps
    assert code == 0 and "below a quarter of dps's preset 1000" in one_line(err, "warning")
    code, _, err = run(capsys, *base, "--steps", 24)  # HRDIS's sr4 preset: 100 steps
    assert code == 0 and "below a quarter" in one_line(err, "warning")
    for argv in (["--steps", 25], ["--method", "tv", "--steps", 2]):
        code, _, err = run(capsys, *base, *argv)
        assert code == 0 and "warning" not in err, err


def test_transparent_input_warns(capsys, tmp_path, tiny_prior_dir):
    rgba = Image.open(EXAMPLE).resize((32, 32)).convert("RGBA")
    alpha = np.full((32, 32), 255, np.uint8)
    alpha[:8] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "rgba.png")
    base = ["--task", "sr4", "--method", "tv", "--steps", 2, "--prior", tiny_prior_dir]
    code, _, err = run(capsys, "solve", "--input", tmp_path / "rgba.png", *base, "--out", tmp_path / "o.png")
    assert code == 0 and "transparent" in one_line(err, "warning")
    Image.open(EXAMPLE).resize((32, 32)).convert("RGBA").save(tmp_path / "opaque.png")
    code, _, err = run(capsys, "solve", "--input", tmp_path / "opaque.png", *base, "--out", tmp_path / "p.png")
    assert code == 0 and "warning" not in err


def test_checkpoint_errors_name_prior_config(capsys, tmp_path, face64):
    from hrdis.unet import ADMUNet

    state = ADMUNet(TINY_CONFIG).state_dict()
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "wrong.pt")
    (tmp_path / "cfg.json").write_text(json.dumps(TINY_CONFIG.to_dict()))
    torch.save({"foo": torch.zeros(3)}, tmp_path / "odd.pt")
    for argv in (["--prior", tmp_path / "wrong.pt", "--prior-config", tmp_path / "cfg.json"],
                 ["--prior", tmp_path / "odd.pt"]):
        code, _, err = run(capsys, "solve", "--input", face64, "--task", "sr4", *argv, "--out", tmp_path / "o.png")
        assert code == 2 and "--prior-config" in one_line(err, "error")


def test_sample_options_have_help(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    out = capsys.readouterr().out
    for words in ("number of samples", "DDIM steps", "eta", "seeds the starting noise"):
        assert words in " ".join(out.split())


def test_readme_lists_every_task():
    readme = (ROOT / "README.md").read_text()
    assert not [name for name in TASKS if f"`{name}`" not in readme]


# ------------------------------------------------------------------------------- does the image fit the prior?

SHARED_FACES = ROOT.parent / "shared" / "data" / "celeba-10k.tar"


def stripes(path, size=64):
    """A generated non-face: coloured diagonal stripes."""
    u = np.arange(size)
    wave = ((u[:, None] + u[None, :]) // 6) % 2
    arr = np.stack([wave * 200 + 30, (1 - wave) * 160 + 40, np.full((size, size), 90)], -1).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_a_generated_non_face_is_flagged_and_no_check_skips(capsys, tmp_path):
    argv = ["solve", "--input", stripes(tmp_path / "stripes.png"), "--task", "inpaint-box", "--method", "tv",
            "--steps", 1, "--out", tmp_path / "o.png"]
    code, _, err = run(capsys, *argv)
    assert code == 0 and "unlike the prior's training data" in one_line(err, "warning")
    code, _, err = run(capsys, *argv, "--no-check")
    assert code == 0 and "warning" not in err


@pytest.mark.skipif(not SHARED_FACES.is_file(), reason="../shared/data/celeba-10k.tar is not beside the repo")
@pytest.mark.parametrize("number", [9800, 9850])  # held out, and used neither to calibrate nor to evaluate
def test_a_held_out_face_passes(capsys, tmp_path, number):
    import tarfile

    with tarfile.open(SHARED_FACES) as tar, Image.open(tar.extractfile(f"celebA/{number:06d}.jpg")) as im:
        im.convert("RGB").save(tmp_path / "face.png")
    argv = ["--method", "tv", "--steps", 1, "--resize", "--out", tmp_path / "o.png"]
    code, _, err = run(capsys, "solve", "--input", tmp_path / "face.png", "--task", "inpaint-box", *argv)
    assert code == 0 and "warning" not in err, err
    box_mask_png(tmp_path / "mask.png", 64, 20, 44)  # at the prior's size: taken as it is
    code, _, err = run(capsys, "solve", "--observed", tmp_path / "face.png", "--mask", tmp_path / "mask.png", *argv)
    assert code == 0 and "warning" not in err, err


def test_a_prior_without_calibration_is_not_checked(tiny_prior_dir):
    from hrdis import load_prior, operators, plausibility

    prior = load_prior(tiny_prior_dir)
    assert plausibility.check(prior, torch.zeros(1, 3, 32, 32), operators.Identity()) is None
