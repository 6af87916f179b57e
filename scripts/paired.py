"""Paired per-image comparison of two methods in a bench folder: for every column both methods finished on
the same images, the mean of (A - B) per image with its standard error and the share of images where A is
better (higher, or lower for the metrics in ``tables.LOWER_IS_BETTER``: distances, residual, time), and each
method's mean PSNR / hf_ratio / residual / seconds on those images only, and its median seconds per network
precision (rows from different machines or precisions are paired only face by face). RESULTS.md quotes these.

    python scripts/paired.py docs/bench/linear hrdis reddiff [--metric psnr]
    python scripts/paired.py docs/bench/ablate-beta-5 beta=0.2 beta=1.0     (ablation folders: tags)
    python scripts/paired.py docs/bench/nonlinear-suite hrdis steps=100 --b-out docs/bench/nonlinear-suite-reddiff-steps
        (B's rows from another folder on the same images)
"""

import argparse
import statistics
import sys

from hrdis.experiments.bench import all_rows, is_error
from hrdis.experiments.tables import LOWER_IS_BETTER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a bench or ablate output folder")
    parser.add_argument("a", help="method (or ablation tag) A")
    parser.add_argument("b", help="method (or ablation tag) B")
    parser.add_argument("--b-out", help="take B's rows from this folder instead (the same images, another run)")
    parser.add_argument("--metric", default="psnr")
    parser.add_argument("--above", type=float,
                        help="also count the images on which each method's metric exceeds this (25: 'recovered')")
    args = parser.parse_args()

    def cells(folder: str) -> dict[tuple[str, str], dict[str, dict]]:
        """(column, method or tag) -> {image: row}"""
        rows = all_rows(folder)
        if not rows:
            sys.exit(f"paired.py: no rows*.jsonl in {folder}; give a folder written by hrdis bench or ablate")
        by_cell: dict[tuple[str, str], dict[str, dict]] = {}
        for r in rows:
            if not is_error(r) and r.get(args.metric) is not None:
                by_cell.setdefault((r.get("column", r["task"]), r.get("tag") or r["method"]), {})[r["image"]] = r
        return by_cell

    cells_a = cells(args.out)
    cells_b = cells(args.b_out) if args.b_out else cells_a
    columns = sorted({c for c, _ in cells_a} | {c for c, _ in cells_b})
    b_name = f"{args.b_out}:{args.b}" if args.b_out else args.b
    print(f"{args.out}: {args.a} minus {b_name} ({args.metric}), per image")
    for col in columns:
        a, b = cells_a.get((col, args.a), {}), cells_b.get((col, args.b), {})
        shared = sorted(set(a) & set(b))
        if len(shared) < 2:
            continue
        diff = [a[i][args.metric] - b[i][args.metric] for i in shared]
        se = statistics.stdev(diff) / len(diff) ** 0.5
        wins = sum((d < 0) if args.metric in LOWER_IS_BETTER else (d > 0) for d in diff) / len(diff)

        def means(rows):
            return " / ".join(f"{statistics.fmean(rows[i][k] for i in shared):.{digits}f}"
                              for k, digits in (("psnr", 2), ("hf_ratio", 2), ("residual", 4), ("seconds", 1)))
        places = 2 if args.metric == "psnr" else 3  # SSIM and LPIPS differences are hundredths
        print(f"  {col}: {statistics.fmean(diff):+.{places}f} (s.e. {se:.{places}f}), {args.a} better on {wins:.0%} of "
              f"{len(diff)}; psnr / hf_ratio / residual / s: {args.a} {means(a)}, {args.b} {means(b)}")

        def median_seconds(rows):
            by_precision: dict[str, list[float]] = {}
            for i in shared:
                by_precision.setdefault(rows[i].get("precision", "?"), []).append(rows[i]["seconds"])
            return ", ".join(f"{p} {statistics.median(s):.1f} ({len(s)})" for p, s in sorted(by_precision.items()))
        print(f"    median s by precision (images): {args.a} {median_seconds(a)}; {args.b} {median_seconds(b)}")
        if args.above is not None:
            above_a, above_b = ({i for i in shared if rows[i][args.metric] > args.above} for rows in (a, b))
            both = above_a & above_b
            gap = statistics.fmean(a[i][args.metric] - b[i][args.metric] for i in both) if both else float("nan")
            print(f"    {args.metric} > {args.above:g}: {args.a} {len(above_a)}, {args.b} {len(above_b)}, "
                  f"both {len(both)}, neither {len(shared) - len(above_a | above_b)}; "
                  f"{args.a} minus {args.b} on both {gap:+.2f}")


if __name__ == "__main__":
    main()
