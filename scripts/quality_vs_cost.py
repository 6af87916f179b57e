"""Quality against cost: a metric (PSNR by default) against network evaluations (NFE), one panel per task and
one line per method through its step counts, from the rows of bench and ablate folders.

    python scripts/quality_vs_cost.py docs/bench/cost-quality [MORE_FOLDERS ...] --out docs/bench/cost-quality

A point is one (task, method, tag) cell: a bench row's preset (tag empty, drawn large) or an ablation's
``steps=N``. Per task, only the images every point of that task has are used, so the points are paired.
DAPS's presets (daps-light, daps, daps-4k) are one method at three budgets, drawn as one line. Writes
``quality_vs_nfe.png`` (needs matplotlib) and ``quality_vs_nfe.md`` (the points, with the standard error of
each point's mean over images).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from hrdis.experiments.bench import all_rows, is_error
from hrdis.experiments.tables import LOWER_IS_BETTER

FAMILY = {"daps-light": "daps", "daps-4k": "daps"}  # presets of one method at other budgets
# one colour per method in every figure, so that plots of different tasks read alike
COLOUR_ORDER = ("hrdis", "reddiff", "dps", "daps", "diffpir", "ddrm", "ddnm", "ddnm-plus", "pigdm", "tv")


def points(folders: list[str], metric: str, tasks: list[str] | None) -> dict[str, dict[tuple[str, str], dict]]:
    """task -> {(method, tag): {image: row}} over all folders (a later folder's row for the same cell wins)."""
    out: dict[str, dict[tuple[str, str], dict]] = {}
    for folder in folders:
        rows = all_rows(folder)
        if not rows:
            sys.exit(f"quality_vs_cost.py: no rows*.jsonl in {folder}; give folders written by hrdis bench or ablate")
        for r in rows:
            if is_error(r) or r.get(metric) is None or r.get("nfe") is None:
                continue
            task = r.get("column", r["task"])
            if tasks and task not in tasks:
                continue
            tag = r.get("tag") or ""
            if tag and not tag.startswith("steps="):
                continue  # other ablations are not budgets
            out.setdefault(task, {}).setdefault((r["method"], tag), {})[r["image"]] = r
    return out


def summarise(cells: dict[tuple[str, str], dict], metric: str) -> tuple[list[dict], int]:
    """Per point: method family, label, mean NFE, mean metric and its s.e., on the images all points share."""
    shared = set.intersection(*(set(images) for images in cells.values()))
    summary = []
    for (method, tag), rows in sorted(cells.items()):
        values = [rows[i][metric] for i in shared]
        summary.append({"family": FAMILY.get(method, method), "method": method, "tag": tag or "preset",
                        "nfe": statistics.fmean(rows[i]["nfe"] for i in shared),
                        "mean": statistics.fmean(values) if values else float("nan"),
                        "se": statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan"),
                        "preset": not tag})
    return summary, len(shared)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="bench or ablate output folders")
    parser.add_argument("--out", required=True, help="folder for quality_vs_nfe.png and .md")
    parser.add_argument("--metric", default="psnr")
    parser.add_argument("--tasks", help="comma-separated columns (default: every column with rows)")
    args = parser.parse_args(argv)
    by_task = points(args.folders, args.metric, args.tasks.split(",") if args.tasks else None)
    if not by_task:
        sys.exit(f"quality_vs_cost.py: no rows with {args.metric} and nfe in {', '.join(args.folders)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = {task: summarise(cells, args.metric) for task, cells in sorted(by_task.items())}

    better = "lower" if args.metric in LOWER_IS_BETTER else "higher"
    lines = [f"# {args.metric} against network evaluations ({better} is better)", "",
             f"From {', '.join(args.folders)} (`python scripts/quality_vs_cost.py`); per task, the images every "
             "point shares. Mean (standard error over images).", ""]
    for task, (summary, n) in summaries.items():
        lines += [f"## {task} ({n} images)", "", f"| method | point | NFE | {args.metric} |", "| --- | --- | --- | --- |"]
        lines += [f"| {p['method']} | {p['tag']} | {p['nfe']:.0f} | {p['mean']:.3f} ({p['se']:.3f}) |"
                  for p in sorted(summary, key=lambda p: (p["family"], p["nfe"]))]
        lines.append("")
    (out / "quality_vs_nfe.md").write_text("\n".join(lines))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: wrote the table only")
        return
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 4.5), squeeze=False)
    others = sorted({p["family"] for summary, _ in summaries.values() for p in summary} - set(COLOUR_ORDER))
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(COLOUR_ORDER + tuple(others))}
    for ax, (task, (summary, n)) in zip(axes[0], summaries.items()):
        for family in sorted({p["family"] for p in summary}):
            pts = sorted((p for p in summary if p["family"] == family), key=lambda p: p["nfe"])
            if all(p["nfe"] == 0 for p in pts):  # prior-free baselines: no network, a level to beat
                ax.axhline(pts[0]["mean"], ls="--", lw=1, color=colours[family], label=f"{family} (no network)")
                continue
            ax.plot([p["nfe"] for p in pts], [p["mean"] for p in pts], marker="o", ms=4, label=family,
                    color=colours[family])
            presets = [p for p in pts if p["preset"]]
            ax.plot([p["nfe"] for p in presets], [p["mean"] for p in presets], ls="", marker="*", ms=13,
                    color=colours[family])
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations (NFE)")
        ax.set_ylabel(args.metric)
        ax.set_title(f"{task} ({n} images; star: preset)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_nfe.png", dpi=110)
    print(f"wrote {out / 'quality_vs_nfe.png'} and {out / 'quality_vs_nfe.md'}")


if __name__ == "__main__":
    main()
