"""scripts/quality_vs_cost.py and scripts/set_distances.py, on hand-made bench rows with known answers."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_rows(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "rows.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _row(method, image, psnr, nfe, tag=""):
    key = f"sr4|{method}|{image}|none|0" + (f"|{tag}" if tag else "")
    return {"key": key, "task": "sr4", "column": "sr4", "tag": tag, "method": method, "image": image,
            "psnr": psnr, "nfe": nfe}


def test_quality_vs_cost_pairs_the_points_on_their_shared_images(tmp_path):
    quality_vs_cost = _script("quality_vs_cost")
    _write_rows(tmp_path / "presets", [_row("hrdis", "a", 20.0, 100), _row("hrdis", "b", 22.0, 100),
                                       _row("hrdis", "c", 99.0, 100),  # not in every point: left out
                                       _row("daps-light", "a", 18.0, 100), _row("daps-light", "b", 18.0, 100),
                                       _row("daps", "a", 21.0, 1000), _row("daps", "b", 23.0, 1000)])
    _write_rows(tmp_path / "sweep", [_row("hrdis", "a", 21.0, 300, "steps=300"), _row("hrdis", "b", 23.0, 300, "steps=300"),
                                     _row("hrdis", "a", 5.0, 300, "beta=0.5")])  # not a budget: ignored
    summary, n = quality_vs_cost.summarise(quality_vs_cost.points([str(tmp_path / "presets"), str(tmp_path / "sweep")],
                                                                  "psnr", None)["sr4"], "psnr")
    assert n == 2
    by_point = {(p["method"], p["tag"]): (p["nfe"], p["mean"], p["family"], p["preset"]) for p in summary}
    assert by_point == {("hrdis", "preset"): (100, 21.0, "hrdis", True), ("hrdis", "steps=300"): (300, 22.0, "hrdis", False),
                        ("daps-light", "preset"): (100, 18.0, "daps", True), ("daps", "preset"): (1000, 22.0, "daps", True)}
    quality_vs_cost.main([str(tmp_path / "presets"), str(tmp_path / "sweep"), "--out", str(tmp_path / "plot")])
    table = (tmp_path / "plot" / "quality_vs_nfe.md").read_text()
    assert "## sr4 (2 images)" in table and "| hrdis | steps=300 | 300 | 22.000 (1.000) |" in table


def test_the_jackknife_standard_error_of_a_mean_is_the_textbook_one():
    set_distances = _script("set_distances")
    x = np.random.default_rng(0).normal(size=25)
    se = set_distances.jackknife_se(lambda keep: x[keep].mean(), len(x))
    assert se == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=1e-12)
