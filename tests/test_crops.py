"""Face crops (images.CROPS): the geometry of tight and loose crops, and bench folders that record their crop."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrdis import images
from hrdis.experiments import bench
from hrdis.cli import main
from hrdis.priors import GaussianPrior


def centre(box):
    left, top, right, bottom = box
    return (left + right) / 2, (top + bottom) / 2


@pytest.mark.parametrize("size", [(178, 218), (89, 109), (64, 64)])
def test_tight_crop_is_inside_the_celeba_crop_and_loose_contains_it(size):
    celeba = images.crop_box(*size)
    tight = images.crop_box(*size, zoom=images.CROPS["tight"])
    loose = images.crop_box(*size, zoom=images.CROPS["loose"])
    side = celeba[2] - celeba[0]
    assert tight[2] - tight[0] == round(side / 1.2) and loose[2] - loose[0] == round(side / 0.8)
    assert celeba[0] <= tight[0] and celeba[1] <= tight[1] and tight[2] <= celeba[2] and tight[3] <= celeba[3]
    assert loose[0] <= celeba[0] and loose[1] <= celeba[1] and celeba[2] <= loose[2] and celeba[3] <= loose[3]
    for box in (tight, loose):  # zoomed about the CelebA crop's centre
        assert np.allclose(centre(box), centre(celeba), atol=1)
    if size == (89, 109):  # the training crop itself is unchanged
        assert celeba == (0, 14, 89, 103)


def test_loose_crop_extends_the_image_by_reflection_not_a_flat_border():
    # Left half red, right half blue: reflection keeps each side's colour out to the edge of the crop.
    arr = np.zeros((109, 89, 3), np.uint8)
    arr[:, :44] = (200, 0, 0)
    arr[:, 44:] = (0, 0, 200)
    crop = np.asarray(images.face_crop(Image.fromarray(arr), 64, crop="loose")).astype(int)
    assert crop.shape == (64, 64, 3)
    assert np.abs(crop[:, 0] - (200, 0, 0)).max() <= 2 and np.abs(crop[:, -1] - (0, 0, 200)).max() <= 2
    assert crop[-1].sum(axis=-1).min() > 150  # the bottom rows, outside the image too, are not black


def test_tight_crop_magnifies_the_centre():
    # A dark disc of radius 20 px centred on the CelebA crop: it covers more of the tight crop, less of the loose.
    w, h = 89, 109
    cx, cy = centre(images.crop_box(w, h))
    yy, xx = np.mgrid[:h, :w]
    arr = np.full((h, w, 3), 255, np.uint8)
    arr[(xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < 20 ** 2] = 0
    im = Image.fromarray(arr)
    dark = {c: (np.asarray(images.face_crop(im, 64, crop=c))[..., 0] < 128).mean() for c in images.CROPS}
    assert dark["tight"] == pytest.approx(dark["celeba"] * 1.2 ** 2, rel=0.08)
    assert dark["loose"] == pytest.approx(dark["celeba"] * 0.8 ** 2, rel=0.08)


def test_unknown_crop_is_a_clear_error(image_dir):
    with pytest.raises(ValueError, match="unknown crop 'ffhq'; choose one of celeba, tight, loose"):
        images.face_crop(Image.new("RGB", (89, 109)), 64, crop="ffhq")
    with pytest.raises(ValueError, match="unknown crop"):
        bench.load_bench_images(str(image_dir), 32, 1, crop="ffhq")


def test_bench_rows_record_the_crop_and_a_folder_refuses_another(tmp_path, image_dir):
    prior = GaussianPrior(0.0, 0.5, image_size=32)
    tight = bench.load_bench_images(str(image_dir), 32, 2, crop="tight")
    celeba = bench.load_bench_images(str(image_dir), 32, 2)
    assert not np.allclose(tight[0].image.numpy(), celeba[0].image.numpy())
    rows = bench.run_bench(prior, ["sr4"], ["hrdis", "bicubic"], tight, tmp_path / "t", params={"steps": 2})
    assert len(rows) == 4 and {r["crop"] for r in rows} == {"tight"}
    # The same image names on another crop would pass for done cells: refused before any cell runs.
    with pytest.raises(ValueError, match=r"holds rows made on tight crops \(now celeba\); use a new --out"):
        bench.run_bench(prior, ["sr4"], ["hrdis", "bicubic"], celeba, tmp_path / "t", params={"steps": 2})
    assert len((tmp_path / "t" / "rows.jsonl").read_text().splitlines()) == 4
    # Rows written before crops were recorded were made on the CelebA crop.
    bench.run_bench(prior, ["sr4"], ["bicubic"], celeba, tmp_path / "c")
    path = tmp_path / "c" / "rows.jsonl"
    old = [{k: v for k, v in json.loads(x).items() if k != "crop"} for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert len(bench.run_bench(prior, ["sr4"], ["bicubic"], celeba, tmp_path / "c")) == 2
    with pytest.raises(ValueError, match="made on celeba crops"):
        bench.run_bench(prior, ["sr4"], ["bicubic"], tight, tmp_path / "c")


def test_bench_cli_crop_flag(capsys, tmp_path, image_dir, tiny_prior_dir):
    args = ["bench", "--tasks", "sr4", "--methods", "bicubic", "--images", image_dir, "--n", 1,
            "--prior", tiny_prior_dir]
    assert main([str(a) for a in args + ["--crop", "loose", "--out", tmp_path]]) == 0
    row = json.loads((tmp_path / "rows.jsonl").read_text())
    assert row["crop"] == "loose"
    assert main([str(a) for a in args + ["--out", tmp_path]]) == 2  # the default, celeba, in a loose folder
    assert "made on loose crops (now celeba)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(a) for a in args + ["--crop", "ffhq", "--out", tmp_path / "x"]])
    assert "invalid choice: 'ffhq'" in capsys.readouterr().err
    assert not Path(tmp_path / "x").exists()
