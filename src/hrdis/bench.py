"""Benchmark: every (task, method, image) cell, one JSON line per finished cell, then tables.

Rows are appended to ``OUT/rows.jsonl`` as each cell finishes (flushed and fsynced), and a re-run
skips the cells already there, so an interrupted run loses at most the cell in flight. Tables
(Markdown + CSV, one per metric, methods as rows and tasks as columns) and figure grids are rebuilt
from the rows at the end of every run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import images, metrics
from .api import solve
from .noise import parse_noise
from .priors import Prior
from .solvers import get_method
from .tasks import get_task

METRICS = ("psnr", "ssim", "residual", "seconds", "nfe")


@dataclass
class BenchImage:
    name: str
    index: int
    image: torch.Tensor  # (1, 3, size, size) in [-1, 1]


def load_bench_images(source: str, size: int, n: int, first: int | None = None) -> list[BenchImage]:
    """``n`` images face-cropped to ``size``: files numbered ``first``.. (CelebA-style names), or the
    first ``n`` in name order when ``first`` is None."""
    out = []
    for i, (name, im) in enumerate(images.iter_image_source(source)):
        num = images.image_stem_number(name)
        if first is not None and (num is None or num < first):
            continue
        out.append(BenchImage(name, num if num is not None else i, images.pil_to_tensor(images.face_crop(im, size))))
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


def cell_key(task: str, method: str, image: str, noise: str, seed: int) -> str:
    return f"{task}|{method}|{image}|{noise}|{seed}"


def run_bench(prior: Prior, tasks: list[str], methods: list[str], bench_images: list[BenchImage], out: str | Path,
              noise: str = "none", seed: int = 0, figures: int = 4, params: dict | None = None,
              rank: int = 0, world: int = 1) -> list[dict]:
    """Run the missing cells (this rank's share of them) and return all rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / ("rows.jsonl" if world == 1 else f"rows.rank{rank}.jsonl")
    for t in tasks:
        get_task(t)
    for m in methods:
        get_method(m)
    noise_model = parse_noise(noise)
    done = {r["key"] for p in out.glob("rows*.jsonl") for r in read_rows(p)}
    size = bench_images[0].image.shape[-1]
    runnable = {(t, m) for t in tasks for m in methods if applicable(m, t, size)}
    cells = [(t, m, im) for t in tasks for im in bench_images for m in methods if (t, m) in runnable]
    cells = [c for i, c in enumerate(cells) if i % world == rank]
    todo = [c for c in cells if cell_key(c[0], c[1], c[2].name, noise, seed) not in done]
    with open(rows_path, "a") as f:
        for task_name, method, im in tqdm(todo, desc="bench", unit="cell"):
            task = get_task(task_name)
            op = task.make_operator(im.image.shape[-1], im.index)
            y = noise_model(op(im.image), seed=im.index)
            result = solve(y, op, prior, method, task=task, noise=noise_model, seed=seed, **(params or {}))
            row = {"key": cell_key(task_name, method, im.name, noise, seed), "task": task_name, "method": method,
                   "image": im.name, "noise": noise, "seed": seed,
                   "psnr": metrics.psnr(result.image, im.image)[0], "ssim": metrics.ssim(result.image, im.image)[0],
                   "residual": metrics.residual(result.image, y, op)[0], "seconds": result.seconds,
                   "nfe": result.nfe, "backprop": result.backprop, "params": result.params}
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            if bench_images.index(im) < figures:
                fig_dir = out / "cells" / task_name
                images.write_image(result.image, fig_dir / f"{Path(im.name).stem}_{method}.png")
                images.write_image(_displayable(op.measurement_image(y), im.image), fig_dir / f"{Path(im.name).stem}_y.png")
                images.write_image(im.image, fig_dir / f"{Path(im.name).stem}_truth.png")
    return [r for p in sorted(out.glob("rows*.jsonl")) for r in read_rows(p)]


def _displayable(meas: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if meas.shape[-1] != like.shape[-1]:
        meas = torch.nn.functional.interpolate(meas, size=like.shape[-2:], mode="nearest")
    return meas


def summarise(rows: list[dict], metric: str, methods: list[str], tasks: list[str]) -> dict:
    """{(method, task): (mean, n)} over the rows."""
    table = {}
    for m in methods:
        for t in tasks:
            vals = [r[metric] for r in rows if r["method"] == m and r["task"] == t]
            if vals:
                table[(m, t)] = (statistics.fmean(vals), len(vals))
    return table


def write_tables(rows: list[dict], out: str | Path, methods: list[str], tasks: list[str]) -> list[Path]:
    out = Path(out)
    written = []
    for metric in METRICS:
        table = summarise(rows, metric, methods, tasks)
        fmt = {"psnr": "{:.2f}", "ssim": "{:.3f}", "residual": "{:.4f}", "seconds": "{:.2f}", "nfe": "{:.0f}"}[metric]
        md = [f"| {metric} | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["method"] + tasks)
        for m in methods:
            cells = [fmt.format(table[(m, t)][0]) if (m, t) in table else "" for t in tasks]
            md.append(f"| {m} | " + " | ".join(c or "—" for c in cells) + " |")
            w.writerow([m] + cells)
        counts = sorted({n for (_, n) in table.values()})
        md.append(f"\nMean over {'/'.join(map(str, counts))} images per cell.")
        images.atomic_write_bytes(out / f"table_{metric}.md", ("\n".join(md) + "\n").encode())
        images.atomic_write_bytes(out / f"table_{metric}.csv", buf.getvalue().encode())
        written.append(out / f"table_{metric}.md")
    return written


def write_figures(out: str | Path, methods: list[str], tasks: list[str]) -> list[Path]:
    """One grid per task: rows are images, columns truth | measurement | each method."""
    out = Path(out)
    written = []
    for t in tasks:
        cell_dir = out / "cells" / t
        if not cell_dir.is_dir():
            continue
        stems = sorted({p.name.rsplit("_", 1)[0] for p in cell_dir.glob("*_truth.png")})
        cols = ["truth", "y"] + [m for m in methods if applicable(m, t)]
        tiles = []
        for s in stems:
            for c in cols:
                p = cell_dir / f"{s}_{c}.png"
                tiles.append(images.read_image(p) if p.is_file() else torch.ones(1, 3, 64, 64))
        if tiles:
            path = out / f"figure_{t}.png"
            images.write_image(images.make_grid(tiles, nrow=len(cols)), path)
            written.append(path)
    return written
