"""The benchmark's tables and figures, rebuilt from the rows (``rows.py``) at the end of every run: one
Markdown + CSV table per metric (methods as rows, columns as columns; means leave error rows out and list
them under "Failed cells"), the set measures per (method, column), the cost table (the paper's Table 3) and
the labelled figure grids (truth | measurement | each method)."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

import numpy as np
import torch

from .. import images
from .rows import (all_rows, col_label, effnet_feature_path, failure_notes, fid_feature_path, is_error, merge_rank_rows,
                   safe_name, truth_key)

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


METRICS = ("psnr", "ssim", "hf_ratio", "residual", "seconds", "nfe", "peak_mem_mb")
FORMATS = {"psnr": "{:.2f}", "ssim": "{:.3f}", "hf_ratio": "{:.3f}", "residual": "{:.4f}", "seconds": "{:.2f}",
           "nfe": "{:.0f}", "peak_mem_mb": "{:.1f}", "lpips": "{:.4f}", "fid": "{:.2f}",
           "psnr_oracle": "{:.2f}", "effnet_distance": "{:.3f}", "effnet_frechet": "{:.2f}", "effnet_kid": "{:.4f}"}
# Metrics where a smaller value is the better result (for PSNR, SSIM and hf_ratio towards 1, larger is).
LOWER_IS_BETTER = frozenset({"residual", "seconds", "nfe", "peak_mem_mb", "lpips", "fid", "effnet_distance",
                             "effnet_frechet", "effnet_kid"})
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
def displayable(meas: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if meas.shape[-1] != like.shape[-1]:
        meas = torch.nn.functional.interpolate(meas, size=like.shape[-2:], mode="nearest")
    return meas


def summarise(rows: list[dict], metric: str, methods: list[str], tasks: list[str],
              row_of=lambda r: r["method"], col_of=col_label) -> dict:
    """{(row, column): (mean, n)} over the rows (rows: methods by default; columns: column labels)."""
    table = {}
    for m in methods:
        for t in tasks:
            vals = [r[metric] for r in rows if row_of(r) == m and col_of(r) == t and r.get(metric) is not None]
            if vals:
                table[(m, t)] = (statistics.fmean(vals), len(vals))
    return table


def render_table(table: dict, metric: str, row_names: list, col_names: list, corner: str, footer: list[str],
                 title: str | None = None, csv_corner: str | None = None,
                 count_text: str = "Mean over {} images per cell.") -> tuple[str, str]:
    """(Markdown, CSV) of a {(row, column): (mean, count)} table, with the footer lines under the Markdown."""
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
    tasks = [getattr(t, "label", t) for t in tasks]
    written = []
    optional = [m for m in OPTIONAL_METRICS if any(r.get(m) is not None for r in rows)]
    failures = failure_notes(rows, methods, tasks)
    for metric in (*METRICS, *optional):
        table = summarise(rows, metric, methods, tasks)  # error rows have no metrics: left out of the means
        md, csv_text = render_table(table, metric, methods, tasks, metric,
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
            paths = [(feature_path(out, r["key"]), feature_path(out, truth_key(r["image"])))
                     for r in rows if row_of(r) == m and col_label(r) == t and not is_error(r)]
            pairs = [(np.load(p), np.load(q)) for p, q in paths if p.is_file() and q.is_file()]
            if len(pairs) >= 2:
                restored, truths = (np.stack(side) for side in zip(*pairs))
                table[(m, t)] = (measure(restored, truths), len(pairs))
    return table


def write_set_table(rows: list[dict], out: str | Path, metric: str, methods: list[str], tasks: list[str],
                    title: str | None = None) -> Path:
    """table_{metric}.md/.csv for a set metric (see ``set_metric_table``): methods as rows, columns as columns."""
    out = Path(out)
    tasks = [getattr(t, "label", t) for t in tasks]
    table = set_metric_table(rows, out, metric, methods, tasks)
    notes = [METRIC_NOTES[metric]] + failure_notes(rows, methods, tasks)
    md, csv_text = render_table(table, metric, methods, tasks, metric, notes, title, "method",
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
        rows = [r for r in rows if col_label(r) in set(tasks)]
    failures = failure_notes(rows, methods, sorted({col_label(r) for r in rows}))
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
    md += ["", f"Over {len({col_label(r) for r in rows})} column(s) ({', '.join(sorted({col_label(r) for r in rows}))}); "
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
    scores = {(col_label(r), Path(r["image"]).stem, r["method"]): r for r in all_rows(out)
              if not is_error(r) and "psnr" in r}
    written = []
    for t in tasks:
        t = getattr(t, "label", t)
        cell_dir = out / "cells" / safe_name(t)
        if not cell_dir.is_dir():
            continue
        stems = sorted({p.name.rsplit("_", 1)[0] for p in cell_dir.glob("*_truth.png")})
        # the methods that ran on this column (a method that does not apply to the task has no images)
        cols = ["truth", "y"] + [m for m in methods if any(cell_dir.glob(f"*_{m}.png"))]
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
