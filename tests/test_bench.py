"""hrdis bench / ablate / diversity: resumable rows, tables, spectral sharpness, costs, sharding."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from hrdis import metrics
from hrdis.experiments import ablate, bench
from hrdis.cli import main
from hrdis.priors import GaussianPrior, load_prior, save_prior



@pytest.fixture
def gauss():
    return GaussianPrior(0.0, 0.5, image_size=32)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_hf_ratio_truth_is_one_and_blur_is_less():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    assert metrics.hf_ratio(x, x) == pytest.approx([1.0, 1.0])
    assert all(r < 0.5 for r in metrics.hf_ratio(blurred, x))
    assert all(r > 1.0 for r in metrics.hf_ratio(x + 0.3 * torch.randn_like(x), blurred))


def test_peak_memory_sees_a_large_allocation():
    with bench.PeakMemory("cpu", interval=0.001) as mem:
        big = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        big += 1
        import time
        time.sleep(0.02)
    del big
    assert mem.method == "cpu_rss_sampled"
    assert mem.peak_mb > 40


def test_columns_and_suites():
    cols = bench.parse_columns("sr4,inpaint-ff20@gaussian:0.1", noise="poisson:1.0")
    assert [c.label for c in cols] == ["sr4@poisson:1.0", "inpaint-ff20@gaussian:0.1"]
    noisy = bench.suite_columns("noisy")
    assert {c.noise for c in noisy} == {"gaussian:0.05", "gaussian:0.1", "poisson:1.0", "speckle:0.1"}
    assert [c.task for c in bench.suite_columns("linear")] == ["inpaint-ff10", "inpaint-ff20", "sr4", "cs25"]
    with pytest.raises(ValueError, match="unknown suite"):
        bench.suite_columns("nope")
    with pytest.raises(ValueError):
        bench.parse_columns("sr4@loud:3")


def test_bench_resumes_only_missing_cells(tmp_path, image_dir, gauss, monkeypatch):
    imgs = bench.load_bench_images(str(image_dir), 32, 2)
    cols = bench.parse_columns("sr4,inpaint-ff20@gaussian:0.1")
    methods = ["hrdis", "cr"]
    out = tmp_path / "b"
    rows = bench.run_bench(gauss, cols, methods, imgs, out, params={"steps": 2}, figures=1)
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    for r in rows:
        assert {"hf_ratio", "peak_mem_mb", "mem_method", "column"} <= r.keys()
        assert r["precision"] == "fp32"  # the network's precision, so mixed-precision tables can be told apart
    # Interrupted: five whole lines survive, the sixth is cut mid-way.
    text = (out / "rows.jsonl").read_text().splitlines(keepends=True)
    (out / "rows.jsonl").write_text("".join(text[:5]) + text[5][:30])
    calls = []
    real_solve = bench.solve
    monkeypatch.setattr(bench, "solve", lambda *a, **k: calls.append(1) or real_solve(*a, **k))
    rows2 = bench.run_bench(gauss, cols, methods, imgs, out, params={"steps": 2})
    assert len(calls) == 3
    assert sorted(r["key"] for r in rows2) == sorted(r["key"] for r in rows)
    assert rows2[:5] == rows[:5]  # finished cells were not redone
    bench.run_bench(gauss, cols, methods, imgs, out, params={"steps": 2})
    assert len(calls) == 3  # nothing left
    # Resuming with other settings would mix two settings in one table: refused before any cell runs.
    with pytest.raises(ValueError, match=r"hrdis rows for sr4 made with steps 2 \(now 3\); use a new --out"):
        bench.run_bench(gauss, cols, methods, imgs, out, params={"steps": 3})
    assert len(calls) == 3
    bench.run_bench(gauss, cols, ["hrdis"], imgs, out, params={"steps": 2, "beta": 0.2})  # the same settings, spelt out


def test_tables_contents(tmp_path, image_dir, gauss):
    imgs = bench.load_bench_images(str(image_dir), 32, 2)
    cols = bench.parse_columns("sr4,inpaint-ff20@gaussian:0.05")
    methods = ["hrdis", "dps", "bicubic"]
    rows = bench.run_bench(gauss, cols, methods, imgs, tmp_path, params={"steps": 2}, figures=1)
    written = bench.write_tables(rows, tmp_path, methods, cols, title="noisy")
    assert {p.name for p in written} >= {"table_psnr.md", "table_hf_ratio.md", "table_peak_mem_mb.md", "table_cost.md"}
    md = (tmp_path / "table_psnr.md").read_text().splitlines()
    assert md[2] == "| psnr | sr4 | inpaint-ff20@gaussian:0.05 |"
    bicubic = next(x for x in md if x.startswith("| bicubic |"))
    assert bicubic.endswith("| — |")  # bicubic only applies to SR
    mean_sr4 = sum(r["psnr"] for r in rows if r["method"] == "hrdis" and r["column"] == "sr4") / 2
    hrdis_row = next(x for x in md if x.startswith("| hrdis |"))
    assert hrdis_row.split("|")[2].strip() == f"{mean_sr4:.2f}"
    assert "as sharp as the truth" in (tmp_path / "table_hf_ratio.md").read_text()
    cost = (tmp_path / "table_cost.md").read_text()
    assert "| method | s / image | NFE | backprop |" in cost
    assert next(x for x in cost.splitlines() if x.startswith("| dps |")).split("|")[4].strip() == "yes"
    assert "/proc/self/statm" in cost and "network precision: fp32." in cost
    csv_lines = (tmp_path / "table_psnr.csv").read_text().splitlines()
    assert csv_lines[0] == "method,sr4,inpaint-ff20@gaussian:0.05" and len(csv_lines) == 4
    figs = bench.write_figures(tmp_path, methods, cols)
    assert {p.name for p in figs} == {"figure_sr4.png", "figure_inpaint-ff20-gaussian-0.05.png"}


def test_t_spacing_grid_takes_the_steps_of_the_preset_at_the_priors_size():
    # deblur-nonlinear runs 300 steps at 64 px (Table 5: 100); the grid must be built for those
    assert ablate.value_params("t_spacing", 0.001, "deblur-nonlinear", "hrdis", "none", {}, 1000, 64)["steps"] == 300
    assert ablate.value_params("t_spacing", 0.001, "deblur-nonlinear", "hrdis", "none", {}, 1000, 256)["steps"] == 100


def test_t_spacing_mapping():
    assert ablate.t_spacing_params(0.001, 150) == {"steps": 150, "t_start": 149, "t_end": 0}
    assert ablate.t_spacing_params(0.01, 50) == {"steps": 50, "t_start": 490, "t_end": 0}
    assert ablate.t_spacing_params(0.1, 150) == {"steps": 10, "t_start": 900, "t_end": 0}
    from hrdis.schedule import VPSchedule
    grid = VPSchedule().timesteps(**ablate.t_spacing_params(0.05, 100))
    assert set(a - b for a, b in zip(grid, grid[1:])) == {50}


def test_ablation_rows_tables_plot_and_resume(capsys, tmp_path, image_dir, tiny_prior_dir):
    pytest.importorskip("matplotlib")
    args = ["ablate", "--param", "beta", "--values", "0,1", "--tasks", "sr4", "--images", image_dir, "--n", 2,
            "--steps", 2, "--lr", 0.03, "--prior", tiny_prior_dir, "--out", tmp_path]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    rows = lines(tmp_path / "rows.jsonl")
    assert sorted(r["key"].rsplit("|", 1)[1] for r in rows) == ["beta=0.0"] * 2 + ["beta=1.0"] * 2
    assert {r["params"]["beta"] for r in rows} == {0.0, 1.0}
    assert {(r["params"]["steps"], r["params"]["lr"]) for r in rows} == {(2, 0.03)}
    assert (tmp_path / "ablation_sr4.png").stat().st_size > 1000
    md = (tmp_path / "ablation_psnr.md").read_text()
    assert "| beta \\ psnr | sr4 |" in md and "| 0.0 |" in md and "| 1.0 |" in md
    assert run(capsys, *args)[0] == 0
    assert len(lines(tmp_path / "rows.jsonl")) == 4  # resumed: nothing redone
    code, _, err = run(capsys, "ablate", "--param", "lr", "--values", "0.1", "--lr", 0.2, "--tasks", "sr4",
                       "--images", image_dir, "--prior", tiny_prior_dir, "--out", tmp_path / "x")
    assert code == 2 and "--lr is the swept parameter" in err


def test_ablation_t_spacing_rows(tmp_path, image_dir, gauss):
    imgs = bench.load_bench_images(str(image_dir), 32, 1)
    rows = ablate.run_ablation(gauss, "t_spacing", [0.001, 0.1], ["sr4"], imgs, tmp_path, params={"steps": 20})
    by = {r["value"]: r["params"] for r in rows}
    assert by[0.001]["t_start"] == 19 and by[0.1]["steps"] == 10 and by[0.1]["t_start"] == 900
    ablate.write_ablation(rows, tmp_path, "t_spacing", [0.001, 0.1], ["sr4"], plots=False)
    assert "epsilon" in (tmp_path / "ablation_psnr.md").read_text()


def test_ablation_tables_under_noise_show_the_noisy_cells(tmp_path, image_dir, gauss):
    imgs = bench.load_bench_images(str(image_dir), 32, 1)
    rows = ablate.run_ablation(gauss, "beta", [0.0, 1.0], ["sr4"], imgs, tmp_path, noise="gaussian:0.05",
                               params={"steps": 3})
    ablate.write_ablation(rows, tmp_path, "beta", [0.0, 1.0], ["sr4"], plots=False, noise="gaussian:0.05")
    md = (tmp_path / "ablation_psnr.md").read_text()
    assert "sr4@gaussian:0.05" in md and "—" not in md.split("| 0.0 |")[1].splitlines()[0]


def test_diversity_cli(capsys, tmp_path, image_dir, tiny_prior_dir):
    code, out, err = run(capsys, "diversity", "--input", image_dir / "000001.png", "--task", "sr4", "--seeds", 3,
                         "--steps", 2, "--prior", tiny_prior_dir, "--out", tmp_path)
    assert code == 0, err
    summary = json.loads((tmp_path / "diversity.json").read_text())
    assert summary["mean_pairwise_rmse"] > 0 and len(summary["psnr_per_seed"]) == 3
    assert Image.open(tmp_path / "std.png").size == (32, 32)
    assert "pairwise RMSE" in out


def test_bench_cli_suite_rejects_unknown(capsys, tmp_path, image_dir, tiny_prior_dir):
    code, _, err = run(capsys, "bench", "--suite", "tables", "--methods", "hrdis", "--images", image_dir, "--n", 1,
                       "--prior", tiny_prior_dir, "--out", tmp_path)
    assert code == 2 and "unknown suite" in err


def test_render_only_tables_every_method_of_earlier_runs_and_runs_nothing(capsys, tmp_path, image_dir,
                                                                           tiny_prior_dir):
    common = ["--tasks", "sr4", "--n", 1, "--figures", 0, "--out", tmp_path]
    for method in ("bicubic", "tv"):  # two runs, each adding one method; each renders only its own
        assert run(capsys, "bench", *common, "--methods", method, "--images", image_dir,
                   "--prior", tiny_prior_dir)[0] == 0
    assert "bicubic" not in (tmp_path / "table_psnr.md").read_text()
    before = (tmp_path / "rows.jsonl").read_text()
    code, out, err = run(capsys, "bench", *common, "--methods", "bicubic,tv", "--render-only")
    assert code == 0, err
    table = (tmp_path / "table_psnr.md").read_text()
    assert "| bicubic |" in table and "| tv |" in table and (tmp_path / "rows.jsonl").read_text() == before
    code, _, err = run(capsys, "bench", "--tasks", "sr4", "--methods", "tv", "--out", tmp_path / "empty", "--render-only")
    assert code == 2 and "no rows to render" in err
    code, _, err = run(capsys, "bench", *common, "--methods", "tv")
    assert code == 2 and "needs --images" in err


def test_distributed_two_process_bench_matches_single(tmp_path, image_dir, tiny_prior_dir):
    common = ["--tasks", "sr4,inpaint-ff20", "--methods", "hrdis,bicubic", "--images", str(image_dir),
              "--num-images", "2", "--steps", "2", "--figures", "0", "--prior", str(tiny_prior_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "hrdis", "bench", *common, "--out", str(tmp_path / "dist")],
                          env=env, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.nice(10))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list((tmp_path / "dist").glob("rows.rank*.jsonl"))  # merged by rank 0
    dist_rows = lines(tmp_path / "dist" / "rows.jsonl")
    per_rank = [{r["key"] for r in dist_rows if r["rank"] == k} for k in (0, 1)]
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]
    assert (tmp_path / "dist" / "table_psnr.md").is_file()
    assert main(["bench", *common, "--out", str(tmp_path / "single")]) == 0
    single = {r["key"]: r for r in lines(tmp_path / "single" / "rows.jsonl")}
    assert set(single) == per_rank[0] | per_rank[1] and len(dist_rows) == len(single) == 6
    for r in dist_rows:
        assert r["psnr"] == pytest.approx(single[r["key"]]["psnr"], abs=1e-4)


def test_ablation_of_a_weight_sets_it_and_refuses_impossible_values(tmp_path, image_dir, gauss):
    from hrdis.experiments import ablate

    imgs = bench.load_bench_images(str(image_dir), 32, 1)
    rows = ablate.run_ablation(gauss, "obs_weight", [0.5, 2.0], ["sr2"], imgs, tmp_path, params={"steps": 3})
    assert sorted(r["params"]["obs_weight"] for r in rows) == [0.5, 2.0]
    with pytest.raises(ValueError, match="lr values must be positive"):
        ablate.parse_value("lr", "0")
    with pytest.raises(ValueError, match="non-negative"):
        ablate.parse_value("obs_weight", "-1")


def test_dmplug_rows_carry_the_oracle_labelled_apart_from_the_es_wmv_selection(tmp_path, image_dir, gauss):
    imgs = bench.load_bench_images(str(image_dir), 32, 1)
    rows = bench.run_bench(gauss, ["sr2"], ["dmplug", "hrdis"], imgs, tmp_path, params={"steps": 30})
    dmplug = next(r for r in rows if r["method"] == "dmplug")
    assert dmplug["psnr_oracle"] >= dmplug["psnr"] - 1e-6  # the oracle is the best iterate, the selection one of them
    assert "psnr_oracle" not in next(r for r in rows if r["method"] == "hrdis")
    written = bench.write_tables(rows, tmp_path, ["dmplug", "hrdis"], ["sr2"])
    assert tmp_path / "table_psnr_oracle.md" in written
    assert "not a restoration one could make without the truth" in (tmp_path / "table_psnr_oracle.md").read_text()


def test_a_failing_cell_is_an_error_row_and_a_rerun_retries_only_it(capsys, tmp_path, image_dir, tiny_prior_dir,
                                                                      monkeypatch):
    args = ["bench", "--tasks", "sr4,inpaint-ff20", "--methods", "hrdis,bicubic", "--images", image_dir, "--n", 2,
            "--steps", 2, "--figures", 1, "--prior", tiny_prior_dir, "--out", tmp_path]
    second = bench.load_bench_images(str(image_dir), 32, 2)[1].image
    real_solve, calls = bench.solve, []

    def flaky(y, op, prior, method, **kw):  # hrdis on sr4 breaks for the second image only
        calls.append(method)
        if method == "hrdis" and kw["task"].name == "sr4" and torch.equal(kw["reference"], second):
            raise RuntimeError("boom\n  on two lines")
        return real_solve(y, op, prior, method, **kw)

    monkeypatch.setattr(bench, "solve", flaky)
    code, out, err = run(capsys, *args)
    assert code == 1 and len(calls) == 6  # the other five cells ran after the failure
    rows = {r["key"]: r for r in lines(tmp_path / "rows.jsonl")}
    failed = [r for r in rows.values() if "error" in r]
    assert len(rows) == 6 and len(failed) == 1
    bad = failed[0]
    assert (bad["task"], bad["column"], bad["method"], bad["image"], bad["noise"], bad["seed"]) == \
        ("sr4", "sr4", "hrdis", "000002.png", "none", 0)
    assert bad["error"] == "RuntimeError: boom on two lines" and "psnr" not in bad and "seconds" not in bad
    assert "cell sr4 / hrdis / 000002.png failed: RuntimeError: boom on two lines" in err
    assert err.strip().splitlines()[-1].startswith("hrdis: 1 cell failed; see ")
    assert "re-run the same command to retry them" in err.strip().splitlines()[-1]
    # The tables are rendered from the finished cells and name the failed one.
    psnr_md = (tmp_path / "table_psnr.md").read_text()
    ok = rows[bad["key"].replace("000002.png", "000001.png")]
    assert next(x for x in psnr_md.splitlines() if x.startswith("| hrdis |")).split("|")[2].strip() == \
        f"{ok['psnr']:.2f}"
    assert "**Failed cells** (1;" in psnr_md
    assert "- hrdis, sr4: 1 of 2 image(s) failed, e.g. 000002.png: RuntimeError: boom on two lines" in psnr_md
    cost = (tmp_path / "table_cost.md").read_text()
    assert next(x for x in cost.splitlines() if x.startswith("| hrdis |")).split("|")[-2].strip() == "3"
    assert "**Failed cells**" in cost
    assert (tmp_path / "figure_sr4.png").is_file()
    # Fixed: the re-run retries that cell only, and its success replaces the error row.
    calls.clear()
    monkeypatch.setattr(bench, "solve", lambda *a, **kw: calls.append(a[3]) or real_solve(*a, **kw))
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert calls == ["hrdis"]
    rerun = lines(tmp_path / "rows.jsonl")
    assert len(rerun) == 6 and not any("error" in r for r in rerun)  # compacted: one line per cell
    assert {r["key"]: r for r in rerun if r["key"] != bad["key"]} == {k: r for k, r in rows.items() if k != bad["key"]}
    assert "Failed cells" not in (tmp_path / "table_psnr.md").read_text()


def test_latest_row_per_cell_wins_across_rank_files(tmp_path):
    def row(key, **kw):
        return json.dumps({"key": key, "task": "sr4", "method": "hrdis", "image": key, **kw}) + "\n"

    (tmp_path / "rows.jsonl").write_text(row("a", error="RuntimeError: x") + row("b", psnr=20.0) + row("c", psnr=21.0))
    (tmp_path / "rows.rank1.jsonl").write_text(row("a", psnr=22.0) + row("b", error="RuntimeError: late")
                                               + row("d", error="ValueError: y") + row("d", error="ValueError: z"))
    merged = {r["key"]: r for r in bench.merge_rank_rows(tmp_path)}
    assert merged["a"] == {"key": "a", "task": "sr4", "method": "hrdis", "image": "a", "psnr": 22.0}
    assert merged["b"]["psnr"] == 20.0  # an error row never replaces a finished one
    assert merged["d"]["error"] == "ValueError: z"
    assert [r["key"] for r in lines(tmp_path / "rows.jsonl")] == ["a", "b", "c", "d"]
    assert not list(tmp_path.glob("rows.rank*.jsonl"))


def test_interrupts_and_argument_errors_still_stop_the_bench(capsys, tmp_path, image_dir, gauss, tiny_prior_dir,
                                                              monkeypatch):
    imgs = bench.load_bench_images(str(image_dir), 32, 1)

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "solve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench(gauss, ["sr4"], ["hrdis"], imgs, tmp_path / "k")
    assert not (tmp_path / "k" / "rows.jsonl").read_text()
    capsys.readouterr()
    code, _, err = run(capsys, "bench", "--tasks", "sr4", "--methods", "hrdis", "--images", image_dir, "--n", 1,
                       "--steps", -1, "--prior", tiny_prior_dir, "--out", tmp_path / "s")
    assert code == 2 and err.strip() == "hrdis: error: --steps must be a positive integer, got -1"
    assert not (tmp_path / "s").exists()


def test_a_bench_folder_refuses_rows_of_another_prior(capsys, tmp_path, image_dir, tiny_prior_dir):
    same = load_prior(tiny_prior_dir)
    assert load_prior(tiny_prior_dir, autocast=torch.bfloat16).weights_id() == same.weights_id()
    with torch.no_grad():
        same.unet.out[-1].bias[0] += 1e-3  # a checkpoint a few steps on: one value changed
    save_prior(tmp_path / "other", same.unet, same.schedule, {"trained_steps": 7})
    assert load_prior(tmp_path / "other").weights_id() != load_prior(tiny_prior_dir).weights_id()
    args = ["bench", "--tasks", "sr4", "--methods", "bicubic", "--images", image_dir, "--n", 1, "--out", tmp_path / "b"]
    assert run(capsys, *args, "--prior", tiny_prior_dir)[0] == 0
    assert lines(tmp_path / "b" / "rows.jsonl")[0]["prior"] == load_prior(tiny_prior_dir).weights_id()
    code, _, err = run(capsys, *args, "--n", 2, "--prior", tmp_path / "other")
    assert code == 2 and "holds rows made with another prior" in err and "Traceback" not in err
    assert len(lines(tmp_path / "b" / "rows.jsonl")) == 1
    assert run(capsys, *args, "--n", 2, "--prior", tiny_prior_dir)[0] == 0  # the same prior resumes
    assert [r["prior_steps"] for r in lines(tmp_path / "b" / "rows.jsonl")] == [None, None]
