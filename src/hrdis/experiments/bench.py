"""Benchmark: every (task, method, image) cell, one JSON line per finished cell (``rows.py``), then tables
(``tables.py``). This module runs the cells; it re-exports the row store's and the tables' public functions,
so ``bench`` is the one name a caller needs.

Rows are appended to ``OUT/rows.jsonl`` as each cell finishes (flushed and fsynced), and a re-run
skips the cells already there, so an interrupted run loses at most the cell in flight. A cell that raises
gets an *error row* (its identifying keys and ``"error": "Type: message"``, no metrics) and the run goes
on; a re-run retries error rows, and the latest row per cell wins (``all_rows``). Tables (Markdown + CSV,
one per metric, methods as rows and tasks as columns) and figure grids are rebuilt from the rows at the end
of every run; means leave error rows out and the Markdown lists them under "Failed cells".

A *column* is a task measured under one noise model (``inpaint-ff20@gaussian:0.05``; plain ``sr4`` is
noiseless), optionally with extra solver parameters and a tag (ablations: ``beta=0.5``); ``SUITES`` name
the column sets of the paper's tables. Every row also records ``hf_ratio`` (spectral sharpness against
the truth, ``metrics.hf_ratio``) and ``peak_mem_mb`` (see ``PeakMemory``), and ``write_cost_table``
renders the per-method costs (the paper's Table 3).

Sharding: ``run_bench(..., rank=r, world=k)`` runs every k-th (column, image), all methods, into
``rows.rank{r}.jsonl``;
``merge_rank_rows`` folds those into ``rows.jsonl`` (``hrdis bench`` under ``torchrun`` does this on
rank 0 after a barrier).

Perceptual metrics (``hrdis.experiments.perceptual``): whenever the ``perceptual`` extra is installed every new row gets
``effnet_distance`` (``DeepFeatureDistance`` to the truth), each cell's restoration and each truth get their
pooled EfficientNet-Lite0 features saved under ``OUT/effnet_features/``, and ``write_tables`` also renders
``effnet_frechet`` and ``effnet_kid`` per (method, column), restorations against their truths. With weights the
user gives: an ``LPIPS`` model adds ``lpips`` to every new row; an ``InceptionFeatures`` model saves Inception
features under ``OUT/fid_features/``, and ``write_fid_table`` renders the FID per (method, column).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .. import images, metrics
from ..api import resolve_params, solve
from ..noise import parse_noise
from ..priors import Prior
from ..runtime import prior_device, prior_precision
from ..solvers import get_method
from ..tasks import get_task
from .rows import (all_rows, cell_key, drop_partial_line, effnet_feature_path, error_text, failed_cells,  # noqa: F401
                   failure_notes, fid_feature_path, is_error, merge_rank_rows, read_rows, safe_name, save_array,
                   truth_key)
from .tables import (FORMATS, MEMORY_METHODS, METRIC_NOTES, METRICS, OPTIONAL_METRICS, SET_METRICS,  # noqa: F401
                     displayable, render,
                     render_only, set_metric_table, summarise, write_cost_table, write_figures, write_fid_table,
                     write_set_table, write_tables)


SUITES = {
    "linear": ("Table 1/9 analogue: noiseless linear problems",
               ["inpaint-ff10", "inpaint-ff20", "sr4", "cs25"]),
    "ffhq": ("Table 2/10 analogue: harder linear problems", ["inpaint-ff30", "sr16", "cs10"]),
    "nonlinear": ("Table 4/11 analogue: nonlinear problems", ["phase-retrieval", "hdr", "deblur-nonlinear"]),
    # Noiseless, these 64 px blurs are invertible (|K| > 1% of its peak nearly everywhere; DDRM recovered a
    # face at 94 dB): the suite takes DPS's measurement noise, sigma 0.05.
    "deblur": ("linear deblurring under Gaussian noise 0.05 (no table in the paper; DPS's kernels and noise)",
               ["deblur-gauss@gaussian:0.05", "deblur-motion@gaussian:0.05"]),
    "noisy": ("noisy measurements (App. C.2): free-form inpainting (20-30%) under four noise models",
              ["inpaint-ff20@gaussian:0.05", "inpaint-ff20@gaussian:0.1", "inpaint-ff20@poisson:1.0",
               "inpaint-ff20@speckle:0.1"]),
}


@dataclass(frozen=True)
class Column:
    """A task under one noise model, with optional extra solver parameters (``tag`` names them in the key)."""
    task: str
    noise: str = "none"
    params: tuple = field(default=(), compare=True)  # ((name, value), ...) added to every method's parameters
    tag: str = ""

    @property
    def label(self) -> str:
        return self.task if self.noise in ("none", "", None) else f"{self.task}@{self.noise}"


def parse_columns(spec: str | list[str], noise: str = "none") -> list[Column]:
    """``"sr4,inpaint-ff20@gaussian:0.05"`` (or a list) -> columns; ``noise`` applies where none is given."""
    items = spec.split(",") if isinstance(spec, str) else spec
    cols = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        task, _, col_noise = item.partition("@")
        get_task(task)
        col_noise = col_noise or noise
        parse_noise(col_noise)
        cols.append(Column(task, col_noise))
    return cols


def suite_columns(name: str, noise: str = "none") -> list[Column]:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return parse_columns(SUITES[name][1], noise)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None




class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.peak_mb`` (None when unmeasurable) and ``pm.method``
    (a key of ``MEMORY_METHODS``)."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.005):
        self.device = torch.device(device)
        self.interval = interval
        self.peak_mb: float | None = None
        self.method = "unavailable"

    def __enter__(self):
        if self.device.type == "cuda":
            self.method = "cuda_max_allocated"
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        self._start = _rss_bytes()
        if self._start is None:
            return self
        self.method = "cpu_rss_sampled"
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __exit__(self, *exc):
        if self.method == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
        elif self.method == "cpu_rss_sampled":
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes() or 0)
            self.peak_mb = max(0, self._peak - self._start) / 2**20
        return False


@dataclass
class BenchImage:
    name: str
    index: int
    image: torch.Tensor  # (1, 3, size, size) in [-1, 1]
    crop: str = "celeba"  # the face crop taken (images.CROPS); rows record it


def load_bench_images(source: str, size: int, n: int, first: int | None = None,
                      crop: str = "celeba") -> list[BenchImage]:
    """``n`` images face-cropped (``images.face_crop``, ``crop`` one of ``images.CROPS``) to ``size``: files
    numbered ``first``.. (CelebA-style names), or the first ``n`` in name order when ``first`` is None."""
    if crop not in images.CROPS:
        raise ValueError(f"unknown crop {crop!r}; choose one of {', '.join(images.CROPS)}")
    out = []
    for i, (name, im) in enumerate(images.iter_image_source(source)):
        num = images.image_stem_number(name)
        if first is not None and (num is None or num < first):
            continue
        out.append(BenchImage(name, num if num is not None else i,
                              images.pil_to_tensor(images.face_crop(im, size, crop=crop)), crop))
        if len(out) == n:
            break
    if len(out) < n:
        raise ValueError(f"asked for {n} images but {source} has only {len(out)} matching ones")
    return out


def applicable(method: str, task: str, image_size: int = 64) -> bool:
    """Whether the method can run on the task's operator (e.g. DDRM needs an SVD, bicubic an SR task)."""
    return get_method(method).applies_to(get_task(task).make_operator(image_size, 0))


def run_bench(prior: Prior, tasks: list[str], methods: list[str], bench_images: list[BenchImage], out: str | Path,
              noise: str = "none", seed: int = 0, figures: int = 4, params: dict | None = None,
              rank: int = 0, world: int = 1, lpips_model=None, inception=None, deep_features=None) -> list[dict]:
    """Run the missing cells (this rank's share of them) and return all rows. ``tasks`` may be task
    names, ``task@noise`` strings (``noise`` applies to the others) or ``Column``s."""
    columns = [t if isinstance(t, Column) else parse_columns([t], noise)[0] for t in tasks]
    return run_cells(prior, columns, methods, bench_images, out, seed=seed, figures=figures, params=params,
                     rank=rank, world=world, lpips_model=lpips_model, inception=inception,
                     deep_features=deep_features)


def run_cells(prior: Prior, columns: list[Column], methods: list[str], bench_images: list[BenchImage],
              out: str | Path, seed: int = 0, figures: int = 4, params: dict | None = None,
              rank: int = 0, world: int = 1, extra: dict | None = None, lpips_model=None,
              inception=None, deep_features=None) -> list[dict]:
    """Run the missing or failed (column, method, image) cells of this rank (every ``world``-th cell, in a
    fixed order) and return all rows found in ``out``. A cell that raises an ``Exception`` gets an error row
    (see ``is_error``) and the next cell runs. ``extra`` is copied into every new row. With
    ``lpips_model`` (``perceptual.LPIPS``) rows get ``lpips``; with ``inception``
    (``perceptual.InceptionFeatures``) the features for ``write_fid_table`` are saved. ``deep_features``
    (``perceptual.DeepFeatureDistance``) adds ``effnet_distance`` and saves the features of ``SET_METRICS``;
    None (the default) uses the installed ``perceptual`` extra's, if any; False scores without it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / ("rows.jsonl" if world == 1 else f"rows.rank{rank}.jsonl")
    for c in columns:
        get_task(c.task)
    for m in methods:
        get_method(m)
    noise_models = {c.noise: parse_noise(c.noise) for c in columns}
    found = all_rows(out)
    rows = [r for r in found if not is_error(r)]  # error rows are retried
    size = bench_images[0].image.shape[-1]
    check_same_params(rows, columns, methods, params or {}, size, out)
    check_same_crop(found, bench_images, out)
    prior_fields = {"prior": prior.weights_id(), "prior_steps": getattr(prior, "meta", {}).get("trained_steps")}
    check_same_prior(found, prior_fields["prior"], out)
    done = {r["key"] for r in rows}
    runnable = {(c.task, m) for c in columns for m in methods if applicable(m, c.task, size)}
    # A rank takes every world-th (column, image) with all its methods, so slow and fast methods mix on every rank.
    cells = [(c, m, im) for g, (c, im) in enumerate((c, im) for c in columns for im in bench_images)
             if g % world == rank for m in methods if (c.task, m) in runnable]
    todo = [c for c in cells if cell_key(c[0].task, c[1], c[2].name, c[0].noise, seed, c[0].tag) not in done]
    device, precision = prior_device(prior), prior_precision(prior)
    if deep_features is None:
        deep_features = installed_deep_features(device)
    elif deep_features is False:
        deep_features = None
    fig_names = {im.name for im in bench_images[:figures]}
    drop_partial_line(rows_path)
    with open(rows_path, "a") as f:
        for col, method, im in tqdm(todo, desc="bench" if world == 1 else f"bench rank {rank}", unit="cell"):
            key = cell_key(col.task, method, im.name, col.noise, seed, col.tag)
            try:
                fields = _run_cell(prior, col, method, im, noise_models[col.noise], key, out, seed=seed,
                                   params=method_params(method, {**(params or {}), **dict(col.params)}), device=device,
                                   figure=im.name in fig_names, lpips_model=lpips_model, inception=inception,
                                   deep_features=deep_features)
            except Exception as exc:  # one broken cell must not cost the others; Ctrl-C still stops the run
                fields = {"error": error_text(exc)}
                tqdm.write(f"hrdis: cell {col.label}{' ' + col.tag if col.tag else ''} / {method} / {im.name} "
                           f"failed: {fields['error']} (written as an error row; a re-run retries it)",
                           file=sys.stderr)
            row = {"key": key, "task": col.task, "column": col.label, "tag": col.tag, "method": method,
                   "image": im.name, "crop": im.crop, "noise": col.noise, "seed": seed,
                   "variant": (params or {}).get("variant", "default"), **fields, "device": str(device),
                   "precision": precision, "rank": rank, **prior_fields, **(extra or {})}
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
    return all_rows(out)


def method_params(method: str, params: dict) -> dict:
    """The run's parameters as one method takes them: ``--steps`` (a quick-run override of every method's
    steps) skips the methods that have none, e.g. bicubic; any other unknown name stays, and is an error."""
    if "steps" in params and "steps" not in get_method(method).config.names():
        return {k: v for k, v in params.items() if k != "steps"}
    return params


def check_same_params(rows: list[dict], columns: list[Column], methods: list[str], params: dict, image_size: int,
                      out: Path) -> None:
    """Refuse to add cells to rows that were made with other solver parameters (a changed preset or
    flag): the tables would silently mix the two settings."""
    expected = {(c.task, c.noise, c.tag, m): resolve_params(m, c.task, c.noise, image_size=image_size,
                                                            **method_params(m, {**params, **dict(c.params)}))
                for c in columns for m in methods}
    for r in rows:
        want = expected.get((r["task"], r["noise"], r.get("tag", ""), r["method"]))
        if want is None:  # a cell this run does not touch
            continue
        had = r.get("params") or {}
        diff = {k: (had[k], v) for k, v in want.items()
                if k in had and k != "seed" and json.dumps(had[k], default=str) != json.dumps(v, default=str)}
        variant = params.get("variant", "default")
        if r.get("variant", "default") != variant:
            diff["variant"] = (r.get("variant", "default"), variant)
        if diff:
            what = ", ".join(f"{k} {a} (now {b})" for k, (a, b) in diff.items())
            raise ValueError(f"{out} holds {r['method']} rows for {r['column']} made with {what}; use a new --out "
                             f"(or delete those rows) so the tables do not mix the two settings")


def check_same_crop(rows: list[dict], bench_images: list[BenchImage], out: Path) -> None:
    """Refuse to add cells of one face crop to a folder whose rows used another: cell keys name the image file,
    not its crop, so the other crop's cells would pass for done. Rows that record no crop were made on the
    CelebA crop."""
    crops = {im.crop for im in bench_images}
    for r in rows:
        had = r.get("crop", "celeba")
        if had not in crops:
            raise ValueError(f"{out} holds rows made on {had} crops (now {'/'.join(sorted(crops))}); use a new --out "
                             f"for each --crop so the tables do not mix the two")


def check_same_prior(rows: list[dict], prior_id: str, out: Path) -> None:
    """Refuse to add cells made with one prior to a folder whose rows used another (``Prior.weights_id``):
    a resumed run after the prior changed would otherwise pass the old cells for done and mix the two.
    Rows that record no prior are from before rows recorded it; docs/RESULTS.md names their prior."""
    for r in rows:
        had = r.get("prior")
        if had is not None and had != prior_id:
            raise ValueError(f"{out} holds rows made with another prior (weights {had}, now {prior_id}); use a new "
                             f"--out for this prior so the tables do not mix the two")


def _run_cell(prior: Prior, col: Column, method: str, im: BenchImage, noise_model, key: str, out: Path, *,
              seed: int, params: dict, device: torch.device, figure: bool, lpips_model, inception,
              deep_features) -> dict:
    """Solve and score one cell: its metric fields. Features and figures are saved before the row is
    written, so a finished cell always has them."""
    task = get_task(col.task)
    op = task.operator(im.image.shape[-1], im.index, params.get("variant", "default"))
    y = noise_model(op(im.image), seed=im.index)  # simulated on the CPU: the same on every device
    truth = im.image
    if device.type != "cpu":
        op, y, truth = op.to(device), y.to(device), truth.to(device)
    with PeakMemory(device) as mem:
        # The truth only records per-step PSNR and, for DMPlug, the oracle iterate its paper reports;
        # no solver reads it to choose its result (api.solve picks restarts by residual).
        result = solve(y, op, prior, method, task=task, noise=noise_model, seed=seed, reference=truth, **params)
    fields = {"psnr": metrics.psnr(result.image, truth)[0], "ssim": metrics.ssim(result.image, truth)[0],
              "hf_ratio": metrics.hf_ratio(result.image, truth)[0],
              "residual": metrics.residual(result.image, y, op)[0], "seconds": result.seconds,
              "nfe": result.nfe, "backprop": result.backprop, "peak_mem_mb": mem.peak_mb,
              "mem_method": mem.method, "params": result.params}
    if "oracle_image" in result.extras:  # DMPlug: the best iterate by ground truth, labelled as such
        fields["psnr_oracle"] = metrics.psnr(result.extras["oracle_image"], truth)[0]
    if lpips_model is not None:
        fields["lpips"] = lpips_model.distance(result.image, truth)[0]
    if deep_features is not None:
        with torch.no_grad():
            distance, restored, truth_pooled = deep_features(result.image, truth)
        fields["effnet_distance"] = distance[0].item()
        save_array(effnet_feature_path(out, key), restored[0])
        truth_path = effnet_feature_path(out, truth_key(im.name))
        if not truth_path.is_file():
            save_array(truth_path, truth_pooled[0])
    if inception is not None:
        with torch.no_grad():
            save_array(fid_feature_path(out, key), inception(result.image)[0])
            truth_path = fid_feature_path(out, truth_key(im.name))
            if not truth_path.is_file():
                save_array(truth_path, inception(truth)[0])
    if figure:
        fig_dir = out / "cells" / safe_name(col.label + (f"_{col.tag}" if col.tag else ""))
        images.write_image(result.image, fig_dir / f"{Path(im.name).stem}_{method}.png")
        images.write_image(displayable(op.measurement_image(y), truth), fig_dir / f"{Path(im.name).stem}_y.png")
        images.write_image(im.image, fig_dir / f"{Path(im.name).stem}_truth.png")
    return fields


@functools.cache
def _deep_features_on(device: str):
    from .perceptual import DeepFeatureDistance

    return DeepFeatureDistance().to(device)


def installed_deep_features(device: torch.device | str = "cpu"):
    """The ``perceptual`` extra's ``DeepFeatureDistance`` on ``device`` (loaded once per process), or None when the
    extra is not installed."""
    from .perceptual import effnet_installed

    return _deep_features_on(str(device)) if effnet_installed() else None
