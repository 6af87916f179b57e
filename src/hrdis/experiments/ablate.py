"""Ablations (the paper's App. C): one solver parameter swept over values, on the bench's machinery.

Each (task, value, image) is a bench cell whose key carries ``PARAM=VALUE`` (``bench.Column.tag``), so
rows go to ``OUT/rows.jsonl`` one per finished cell and a re-run only does the missing ones. Tables
(``ablation_{metric}.md/.csv``: values as rows, tasks as columns) and one plot per task
(``ablation_{task}.png``: metric vs value) are rebuilt from the rows at the end of every run. With the
``perceptual`` extra installed they include the deep-feature distance and, per (value, task), the Fréchet and
kernel distances of the restorations to their truths (``bench.SET_METRICS``).

Parameters:

- ``beta``: the weight of fresh noise in the hybrid noise (0 = CR, 1 = RED-diff).
- ``steps``: N, the number of steps (network evaluations).
- ``t_spacing``: the paper's timestep spacing epsilon (App. C.8), as a fraction of T. The solver's
  timesteps stay a uniform grid ending at t = 0 whose neighbours are epsilon * T apart: with N steps
  (the task preset's, or ``--steps``) it starts at t_start = epsilon * T * (N - 1); when that does not fit
  below T (epsilon * T * (N - 1) > T - 1) the grid keeps the spacing and starts at the largest multiple
  that fits, so N drops to floor((T - 1) / (epsilon * T)) + 1. Small epsilon therefore means few noise
  levels near 0; epsilon = 1 / T with N = T would be the full schedule. ``t_spacing_params`` does this.
- ``obs_weight``, ``reg_weight``, ``lr``: lambda_1, lambda_2 and Adam's learning rate, e.g. to re-tune a
  Table 5 preset for an operator whose scale differs from the paper's.
"""

from __future__ import annotations

from pathlib import Path

from .. import images
from . import bench, tables
from ..api import resolve_params
from ..noise import parse_noise
from ..priors import Prior

PARAMS = ("beta", "steps", "t_spacing", "obs_weight", "reg_weight", "lr")
PLOT_METRICS = ("psnr", "ssim", "hf_ratio")  # and the perceptual ones when the rows have them


def t_spacing_params(epsilon: float, steps: int, num_timesteps: int = 1000) -> dict:
    """{steps, t_start, t_end} for a uniform grid ending at 0 with neighbours epsilon * T apart."""
    if not 0 < epsilon <= 1:
        raise ValueError(f"t_spacing (epsilon) must be in (0, 1], got {epsilon}")
    gap = epsilon * num_timesteps
    n = min(steps, int((num_timesteps - 1) // gap) + 1)
    return {"steps": n, "t_start": int(round(gap * (n - 1))), "t_end": 0}


def parse_value(param: str, text: str):
    if param not in PARAMS:
        raise ValueError(f"unknown ablation parameter {param!r}; choose one of {', '.join(PARAMS)}")
    v = float(text)
    if param == "steps":
        if v != int(v) or v < 1:
            raise ValueError(f"steps must be positive integers, got {text}")
        return int(v)
    if param in ("lr", "t_spacing") and not v > 0:
        raise ValueError(f"{param} values must be positive, got {text}")
    if param in ("obs_weight", "reg_weight") and not v >= 0:
        raise ValueError(f"{param} values must be non-negative, got {text}")
    return v


def value_params(param: str, value, task: str, method: str, noise: str, base: dict, num_timesteps: int,
                 image_size: int | None = None) -> dict:
    """The parameters of one swept value; a t_spacing grid is built for the steps the task's preset has at
    this image size (e.g. 300 for the nonlinear blur at 64 px)."""
    if param == "t_spacing":
        steps = resolve_params(method, task, parse_noise(noise), image_size=image_size, **base)["steps"]
        return t_spacing_params(value, steps, num_timesteps)
    return {param: value}


def run_ablation(prior: Prior, param: str, values: list, tasks: list[str], bench_images: list[bench.BenchImage],
                 out: str | Path, method: str = "hrdis", noise: str = "none", seed: int = 0,
                 params: dict | None = None, figures: int = 0, rank: int = 0, world: int = 1,
                 deep_features=None) -> list[dict]:
    """Run the missing (task, value, image) cells and return the rows of this sweep (``deep_features``: as
    ``bench.run_cells``; by default the installed ``perceptual`` extra's)."""
    if param not in PARAMS:
        raise ValueError(f"unknown ablation parameter {param!r}; choose one of {', '.join(PARAMS)}")
    base = dict(params or {})
    if param == "steps":
        base.pop("steps", None)
    T = prior.schedule.num_timesteps
    cols = []
    for c in bench.parse_columns(tasks, noise):
        for v in values:
            p = value_params(param, v, c.task, method, c.noise, base, T, prior.image_size)
            cols.append(bench.Column(c.task, c.noise, tuple(sorted(p.items())), f"{param}={v}"))
    rows = []
    for v in values:  # one run_cells per value so each row records its value
        mine = [c for c in cols if c.tag == f"{param}={v}"]
        rows = bench.run_cells(prior, mine, [method], bench_images, out, seed=seed, figures=figures, params=base,
                               rank=rank, world=world, extra={"param": param, "value": v},
                               deep_features=deep_features)
    tags = {c.tag for c in cols}
    return [r for r in rows if r.get("tag") in tags and r["method"] == method]


def value_of(r: dict):
    """The swept value a row was made with."""
    return r.get("value", r.get("tag", "").partition("=")[2])


def write_ablation(rows: list[dict], out: str | Path, param: str, values: list, tasks: list[str],
                   plots: bool = True, noise: str = "none") -> list[Path]:
    """ablation_{metric}.md/.csv (values as rows, tasks as columns, each under ``noise`` as in
    ``run_ablation``) and ablation_{task}.png plots."""
    out = Path(out)
    labels = [c.label for c in bench.parse_columns(tasks, noise)] if tasks else []
    written = []
    for metric, table in metric_tables(rows, out, values, labels).items():
        notes = [bench.METRIC_NOTES[metric]] if metric in bench.METRIC_NOTES else []
        if param == "t_spacing":
            notes.append("t_spacing: epsilon, the gap between consecutive timesteps as a fraction of T; "
                         "grid ends at t = 0 (see hrdis.experiments.ablate).")
        notes += bench.failure_notes(rows, values, labels, row_of=value_of)
        md, csv_text = tables.render_table(table, metric, values, labels, f"{param} \\ {metric}", notes,
                                     f"Ablation of {param} ({rows[0]['method'] if rows else ''})", param,
                                     **({"count_text": "Over {} images per cell."}
                                        if metric in bench.SET_METRICS else {}))
        images.atomic_write_bytes(out / f"ablation_{metric}.md", md.encode())
        images.atomic_write_bytes(out / f"ablation_{metric}.csv", csv_text.encode())
        written.append(out / f"ablation_{metric}.md")
    if plots:
        written += plot_ablation(rows, out, param, values, labels)
    return written


def metric_tables(rows: list[dict], out: str | Path, values: list, labels: list[str]) -> dict:
    """{metric: {(value, task label): (value of the metric, n)}}: the bench's metrics (means over images), the
    optional ones some row has, and the set metrics when the rows' features were saved in ``out``."""
    tables = {metric: bench.summarise(rows, metric, values, labels, row_of=value_of)
              for metric in (*bench.METRICS, *bench.OPTIONAL_METRICS)
              if metric in bench.METRICS or any(r.get(metric) is not None for r in rows)}
    if (Path(out) / "effnet_features").is_dir():
        tables.update({metric: bench.set_metric_table(rows, out, metric, values, labels, row_of=value_of)
                       for metric in bench.SET_METRICS})
    return tables


def load_pyplot():
    """matplotlib's pyplot on the Agg backend, or a one-line ImportError naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'hrdis[plots]' (or pass --no-plots)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ablation(rows: list[dict], out: str | Path, param: str, values: list, labels: list[str]) -> list[Path]:
    """One PNG per task: PSNR, SSIM and hf_ratio (mean over images) against the parameter's value, and the
    perceptual metrics (``effnet_distance``, ``effnet_frechet``, ``effnet_kid``, ``lpips``) the rows have."""
    plt = load_pyplot()
    out = Path(out)
    tables = metric_tables(rows, out, values, labels)
    plotted = [*PLOT_METRICS, *(m for m in ("effnet_distance", *bench.SET_METRICS, "lpips") if tables.get(m))]
    written = []
    for label in labels:
        fig, axes = plt.subplots(1, len(plotted), figsize=(4 * len(plotted), 3.2), squeeze=False)
        for ax, metric in zip(axes[0], plotted):
            table = tables[metric]
            xs = [v for v in values if (v, label) in table]
            ax.plot(xs, [table[(v, label)][0] for v in xs], "o-")
            ax.set_xlabel(param)
            ax.set_ylabel(metric)
            if param == "t_spacing" and xs and min(xs) > 0:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        fig.suptitle(f"{label}: {param}")
        fig.tight_layout()
        path = out / f"ablation_{bench.safe_name(label)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
