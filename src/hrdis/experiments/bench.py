"""Benchmark: every (task, method, image) cell, one JSON line per finished cell, then tables.

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

import csv
import functools
import hashlib
import io
import json
import os
import re
import statistics
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import images, metrics
from ..api import resolve_params, solve
from ..noise import parse_noise
from ..priors import Prior
from ..runtime import prior_device, prior_precision
from ..solvers import get_method
from ..tasks import get_task

METRICS = ("psnr", "ssim", "hf_ratio", "residual", "seconds", "nfe", "peak_mem_mb")
FORMATS = {"psnr": "{:.2f}", "ssim": "{:.3f}", "hf_ratio": "{:.3f}", "residual": "{:.4f}", "seconds": "{:.2f}",
           "nfe": "{:.0f}", "peak_mem_mb": "{:.1f}", "lpips": "{:.4f}", "fid": "{:.2f}",
           "psnr_oracle": "{:.2f}", "effnet_distance": "{:.3f}", "effnet_frechet": "{:.2f}", "effnet_kid": "{:.4f}"}
# Tabled only when some row has them (they need the perceptual extra, or weights the user passes).
OPTIONAL_METRICS = ("effnet_distance", "lpips", "psnr_oracle")
# One value per (method, column) from the features saved per cell, restorations against their truths; tabled
# when ``OUT/effnet_features`` exists.
SET_METRICS = ("effnet_frechet", "effnet_kid")
METRIC_NOTES = {
    "hf_ratio": "hf_ratio: energy of the 2-D FFT above 1/4 of Nyquist (radial), result over truth; "
                "1 = as sharp as the truth, < 1 blurrier, > 1 noisier.",
    "peak_mem_mb": "peak_mem_mb: see table_cost.md for how memory is measured.",
    "psnr_oracle": "psnr_oracle: PSNR of the iterate closest to the truth (DMPlug's oracle, as its paper reports); "
                   "not a restoration one could make without the truth. The psnr table shows the ES-WMV selection.",
    "lpips": "lpips: LPIPS v0.1 distance to the truth (0 = identical, lower is better).",
    "effnet_distance": "effnet_distance: deep-feature distance to the truth (hrdis.experiments.perceptual.DeepFeatureDistance: "
                       "LPIPS's recipe without learned weights on five stages of ImageNet EfficientNet-Lite0, input "
                       "upsampled to 224 px; 0 = identical, lower is better). Not an LPIPS value.",
    "effnet_frechet": "effnet_frechet: Frechet distance between Gaussians fitted to the pooled EfficientNet-Lite0 "
                      "features (1280-d) of a cell's restorations and of their truths, one value per cell; FID's "
                      "formula on another network (not an FID value), biased upward for few images: compare "
                      "within a column, at equal image counts.",
    "effnet_kid": "effnet_kid: unbiased squared MMD (KID's cubic kernel) between the same features, each "
                  "restoration paired with its truth (hrdis.experiments.perceptual.kernel_feature_distance); 0 in expectation "
                  "for equal distributions, so it can be slightly negative; lower is better. Not a KID value.",
    "fid": "fid: Frechet Inception Distance (pytorch-fid's Inception-v3, 2048-d pool features) between a cell's "
           "restorations and their clean truths, one value per cell (not a mean). It is biased upward for few "
           "images: compare methods within a column, at equal image counts.",
}

# Column sets of the paper's tables (``task`` or ``task@noise``).
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


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", name)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


MEMORY_METHODS = {
    "cuda_max_allocated": "torch.cuda.max_memory_allocated() during the cell minus the allocation at its start "
                          "(tensors on the GPU only)",
    "cpu_rss_sampled": "CPU: the process's resident set size (/proc/self/statm) sampled every 5 ms by a thread; "
                       "peak during the cell minus the RSS at its start. It counts every allocation of the process "
                       "(torch, numpy, Python), may miss spikes shorter than 5 ms, and reads low (down to 0) when "
                       "the cell reuses memory the allocator kept from earlier cells, so the first cell of a "
                       "process is the most complete; compare methods within one run",
    "unavailable": "no /proc/self/statm on this system: not measured",
}


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


def read_rows(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interruption: that cell is redone
                continue
    return rows


def cell_key(task: str, method: str, image: str, noise: str, seed: int, tag: str = "") -> str:
    return f"{task}|{method}|{image}|{noise}|{seed}" + (f"|{tag}" if tag else "")


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
    rows = [r for r in all_rows(out) if not is_error(r)]  # error rows are retried
    size = bench_images[0].image.shape[-1]
    check_same_params(rows, columns, methods, params or {}, size, out)
    check_same_crop(all_rows(out), bench_images, out)
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
                   "precision": precision, "rank": rank, **(extra or {})}
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
        _save_array(effnet_feature_path(out, key), restored[0])
        truth_path = effnet_feature_path(out, _truth_key(im.name))
        if not truth_path.is_file():
            _save_array(truth_path, truth_pooled[0])
    if inception is not None:
        with torch.no_grad():
            _save_array(fid_feature_path(out, key), inception(result.image)[0])
            truth_path = fid_feature_path(out, _truth_key(im.name))
            if not truth_path.is_file():
                _save_array(truth_path, inception(truth)[0])
    if figure:
        fig_dir = out / "cells" / safe_name(col.label + (f"_{col.tag}" if col.tag else ""))
        images.write_image(result.image, fig_dir / f"{Path(im.name).stem}_{method}.png")
        images.write_image(_displayable(op.measurement_image(y), truth), fig_dir / f"{Path(im.name).stem}_y.png")
        images.write_image(im.image, fig_dir / f"{Path(im.name).stem}_truth.png")
    return fields


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` on one line (torch messages span several)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def is_error(row: dict) -> bool:
    return "error" in row


def failed_cells(rows: list[dict], row_names: list, col_names: list, row_of=lambda r: r["method"]) -> list[dict]:
    """The error rows of the given table rows (methods by default) and columns (labels)."""
    return [r for r in rows if is_error(r) and row_of(r) in row_names and _col(r) in col_names]


def failure_notes(rows: list[dict], row_names: list, col_names: list, row_of=lambda r: r["method"]) -> list[str]:
    """Markdown footer naming, per (row, column), how many images failed and the first error; empty if none."""
    groups: dict = {}
    for r in failed_cells(rows, row_names, col_names, row_of):
        groups.setdefault((row_of(r), _col(r)), []).append(r)
    if not groups:
        return []
    notes = ["", f"**Failed cells** ({sum(map(len, groups.values()))}; left out of the means, a re-run of the "
             "same command retries them):"]
    for (name, col), failed in groups.items():
        n = sum(1 for r in rows if row_of(r) == name and _col(r) == col)
        notes.append(f"- {name}, {col}: {len(failed)} of {n} image(s) failed, e.g. {failed[0]['image']}: "
                     f"{failed[0]['error']}")
    return notes


@functools.cache
def _deep_features_on(device: str):
    from .perceptual import DeepFeatureDistance

    return DeepFeatureDistance().to(device)


def installed_deep_features(device: torch.device | str = "cpu"):
    """The ``perceptual`` extra's ``DeepFeatureDistance`` on ``device`` (loaded once per process), or None when the
    extra is not installed."""
    from .perceptual import effnet_installed

    return _deep_features_on(str(device)) if effnet_installed() else None


def fid_feature_path(out: str | Path, key: str) -> Path:
    """Where a cell's (or, for ``_truth_key(image)``, a truth's) Inception features are saved."""
    return Path(out) / "fid_features" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"


def effnet_feature_path(out: str | Path, key: str) -> Path:
    """Where a cell's (or a truth's) pooled EfficientNet-Lite0 features are saved."""
    return Path(out) / "effnet_features" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"


def _truth_key(image: str) -> str:
    return f"truth|{image}"


def _save_array(path: Path, features: torch.Tensor) -> None:
    buf = io.BytesIO()
    np.save(buf, features.float().cpu().numpy())
    images.atomic_write_bytes(path, buf.getvalue())


def drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by an interruption, so the next row starts on a line of its own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def all_rows(out: str | Path) -> list[dict]:
    """Every row in ``out``'s rows*.jsonl, one per cell key: the latest (rows.jsonl, then the rank files, each in
    order), so a retried cell's success replaces its error row; an error row never replaces a finished row."""
    latest: dict[str, dict] = {}
    for p in sorted(Path(out).glob("rows*.jsonl")):
        for r in read_rows(p):
            if not is_error(r) or is_error(latest.get(r["key"], r)):
                latest[r["key"]] = r
    return list(latest.values())


def merge_rank_rows(out: str | Path) -> list[dict]:
    """Fold rows.rank*.jsonl into rows.jsonl (one line per cell, the latest) and remove them; returns all rows.
    Also compacts rows.jsonl when retried cells left superseded lines in it."""
    out = Path(out)
    rank_files = sorted(out.glob("rows.rank*.jsonl"))
    rows = all_rows(out)
    if not rank_files and len(read_rows(out / "rows.jsonl")) == len(rows):
        return rows
    images.atomic_write_bytes(out / "rows.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows).encode())
    for p in rank_files:
        p.unlink()
    return rows


def _displayable(meas: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if meas.shape[-1] != like.shape[-1]:
        meas = torch.nn.functional.interpolate(meas, size=like.shape[-2:], mode="nearest")
    return meas


def _col(r: dict) -> str:
    return r.get("column", r["task"])


def summarise(rows: list[dict], metric: str, methods: list[str], tasks: list[str],
              row_of=lambda r: r["method"], col_of=_col) -> dict:
    """{(row, column): (mean, n)} over the rows (rows: methods by default; columns: column labels)."""
    table = {}
    for m in methods:
        for t in tasks:
            vals = [r[metric] for r in rows if row_of(r) == m and col_of(r) == t and r.get(metric) is not None]
            if vals:
                table[(m, t)] = (statistics.fmean(vals), len(vals))
    return table


def _render(table: dict, metric: str, row_names: list, col_names: list, corner: str, footer: list[str],
            title: str | None = None, csv_corner: str | None = None,
            count_text: str = "Mean over {} images per cell.") -> tuple[str, str]:
    fmt = FORMATS.get(metric, "{:.4g}")
    md = ([f"**{title}**", ""] if title else []) + [
        f"| {corner} | " + " | ".join(map(str, col_names)) + " |", "|---" * (len(col_names) + 1) + "|"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([csv_corner or corner] + list(col_names))
    for m in row_names:
        cells = [fmt.format(table[(m, t)][0]) if (m, t) in table else "" for t in col_names]
        md.append(f"| {m} | " + " | ".join(c or "—" for c in cells) + " |")
        w.writerow([m] + cells)
    counts = sorted({n for (_, n) in table.values()})
    md.append("")
    md.append(count_text.format('/'.join(map(str, counts)) or 0))
    md += footer
    return "\n".join(md) + "\n", buf.getvalue()


def write_tables(rows: list[dict], out: str | Path, methods: list[str], tasks: list[str],
                 title: str | None = None) -> list[Path]:
    """table_{metric}.md/.csv: methods as rows, columns (task or task@noise) as columns; and table_cost."""
    out = Path(out)
    tasks = [t.label if isinstance(t, Column) else t for t in tasks]
    written = []
    optional = [m for m in OPTIONAL_METRICS if any(r.get(m) is not None for r in rows)]
    failures = failure_notes(rows, methods, tasks)
    for metric in (*METRICS, *optional):
        table = summarise(rows, metric, methods, tasks)  # error rows have no metrics: left out of the means
        md, csv_text = _render(table, metric, methods, tasks, metric,
                               ([METRIC_NOTES[metric]] if metric in METRIC_NOTES else []) + failures, title, "method")
        images.atomic_write_bytes(out / f"table_{metric}.md", md.encode())
        images.atomic_write_bytes(out / f"table_{metric}.csv", csv_text.encode())
        written.append(out / f"table_{metric}.md")
    if (out / "effnet_features").is_dir():
        written += [write_set_table(rows, out, metric, methods, tasks, title) for metric in SET_METRICS]
    written.append(write_cost_table(rows, out, methods, tasks))
    return written


def set_metric_table(rows: list[dict], out: str | Path, metric: str, row_names: list, col_names: list,
                     row_of=lambda r: r["method"]) -> dict:
    """{(row, column): (value, n)} for a set metric ("fid" or one of ``SET_METRICS``): the restorations of the
    cells of each (row, column) against their truths, from the features the run saved (cells run without them
    are left out; at least 2 images)."""
    from . import perceptual

    feature_path, measure = {"fid": (fid_feature_path, perceptual.fid_from_features),
                             "effnet_frechet": (effnet_feature_path, perceptual.frechet_feature_distance),
                             "effnet_kid": (effnet_feature_path, perceptual.kernel_feature_distance)}[metric]
    table = {}
    for m in row_names:
        for t in col_names:
            paths = [(feature_path(out, r["key"]), feature_path(out, _truth_key(r["image"])))
                     for r in rows if row_of(r) == m and _col(r) == t and not is_error(r)]
            pairs = [(np.load(p), np.load(q)) for p, q in paths if p.is_file() and q.is_file()]
            if len(pairs) >= 2:
                restored, truths = (np.stack(side) for side in zip(*pairs))
                table[(m, t)] = (measure(restored, truths), len(pairs))
    return table


def write_set_table(rows: list[dict], out: str | Path, metric: str, methods: list[str], tasks: list[str],
                    title: str | None = None) -> Path:
    """table_{metric}.md/.csv for a set metric (see ``set_metric_table``): methods as rows, columns as columns."""
    out = Path(out)
    tasks = [t.label if isinstance(t, Column) else t for t in tasks]
    table = set_metric_table(rows, out, metric, methods, tasks)
    notes = [METRIC_NOTES[metric]] + failure_notes(rows, methods, tasks)
    md, csv_text = _render(table, metric, methods, tasks, metric, notes, title, "method",
                           count_text="Over {} images per cell.")
    images.atomic_write_bytes(out / f"table_{metric}.md", md.encode())
    images.atomic_write_bytes(out / f"table_{metric}.csv", csv_text.encode())
    return out / f"table_{metric}.md"


def write_fid_table(rows: list[dict], out: str | Path, methods: list[str], tasks: list[str],
                    title: str | None = None) -> Path:
    """table_fid.md/.csv: per (method, column), the FID between the restored images and their truths, from the
    features ``run_cells(..., inception=...)`` saved."""
    return write_set_table(rows, out, "fid", methods, tasks, title)


def write_cost_table(rows: list[dict], out: str | Path, methods: list[str], tasks: list[str] | None = None) -> Path:
    """table_cost.md/.csv (the paper's Table 3): per method, over the given columns' rows, mean wall time
    per image, mean NFE, whether it backpropagates through the network, and peak memory (mean and max)."""
    out = Path(out)
    if tasks is not None:
        rows = [r for r in rows if _col(r) in set(tasks)]
    failures = failure_notes(rows, methods, sorted({_col(r) for r in rows}))
    rows = [r for r in rows if not is_error(r)]  # failed cells have no costs
    header = ["method", "s / image", "NFE", "backprop", "peak MB (mean)", "peak MB (max)", "cells"]
    md = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        if not mine:
            continue
        mem = [r["peak_mem_mb"] for r in mine if r.get("peak_mem_mb") is not None]
        cells = [m, f"{statistics.fmean(r['seconds'] for r in mine):.2f}",
                 f"{statistics.fmean(r['nfe'] for r in mine):.0f}",
                 "yes" if any(r.get("backprop") for r in mine) else "no",
                 f"{statistics.fmean(mem):.1f}" if mem else "", f"{max(mem):.1f}" if mem else "", str(len(mine))]
        md.append("| " + " | ".join(c or "—" for c in cells) + " |")
        w.writerow(cells)
    mem_methods = sorted({r.get("mem_method", "unavailable") for r in rows})
    devices = sorted({r.get("device", "?") for r in rows})
    precisions = sorted({r.get("precision", "unrecorded") for r in rows})
    md += ["", f"Over {len({_col(r) for r in rows})} column(s) ({', '.join(sorted({_col(r) for r in rows}))}); "
           f"device: {', '.join(devices)}; network precision: {', '.join(precisions)}. NFE: network evaluations "
           "(all restarts). Backprop: whether the method differentiates through the network.", "Peak memory: " +
           "; ".join(MEMORY_METHODS.get(k, k) for k in mem_methods) + "."] + failures
    images.atomic_write_bytes(out / "table_cost.md", ("\n".join(md) + "\n").encode())
    images.atomic_write_bytes(out / "table_cost.csv", buf.getvalue().encode())
    return out / "table_cost.md"


def write_figures(out: str | Path, methods: list[str], tasks: list[str]) -> list[Path]:
    """One grid per task: rows are images, columns truth | measurement | each method, each panel enlarged
    to at least 256 px and labelled (a method's with its PSNR / SSIM from the rows)."""
    out = Path(out)
    scores = {(_col(r), Path(r["image"]).stem, r["method"]): r for r in all_rows(out)
              if not is_error(r) and "psnr" in r}
    written = []
    for t in tasks:
        t = t.label if isinstance(t, Column) else t
        cell_dir = out / "cells" / safe_name(t)
        if not cell_dir.is_dir():
            continue
        stems = sorted({p.name.rsplit("_", 1)[0] for p in cell_dir.glob("*_truth.png")})
        cols = ["truth", "y"] + [m for m in methods if applicable(m, t.split("@")[0])]
        panels = []
        for s in stems:
            for c in cols:
                p = cell_dir / f"{s}_{c}.png"
                label = {"truth": f"{s} truth", "y": "measurement"}.get(c, c)
                row = scores.get((t, s, c))
                if row is not None:
                    label += f"\n{row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}"
                panels.append((images.read_image(p) if p.is_file() else None, label))
        if any(x is not None for x, _ in panels):
            path = out / f"figure_{safe_name(t)}.png"
            images.write_image(images.labelled_grid(panels, ncol=len(cols)), path)
            written.append(path)
    return written


def render(out: str | Path, methods: list[str], columns: list, title: str | None = None, fid: bool = False) -> list[dict]:
    """Fold the rank files into rows.jsonl, write the tables (and the FID table), the figure grids, and print
    the PSNR table; returns every row."""
    rows = merge_rank_rows(out)
    tables = write_tables(rows, out, methods, columns, title=title)
    if fid:
        tables.append(write_fid_table(rows, out, methods, columns, title=title))
    write_figures(out, methods, columns)
    print((Path(out) / "table_psnr.md").read_text())
    print(f"{len(rows)} rows in {out}; tables: {', '.join(p.name for p in tables)}")
    return rows


def render_only(out: str | Path, methods: list[str], columns: list, title: str | None = None) -> int:
    """``hrdis bench --render-only``: tables and figures from the rows already in ``out``, running no cell."""
    if not all_rows(out):
        raise ValueError(f"{out} holds no rows to render; run hrdis bench without --render-only first")
    render(out, methods, columns, title)
    return 0
