"""Paired comparison of two methods under the set measures of the `perceptual` extra: per column, on the images
both finished, each method's kernel distance (``effnet_kid``) and Fréchet distance (``effnet_frechet``) of its
restorations against their truths, and the kernel distance's difference A - B with a jackknife standard error
(leave one image out of both sets at once, so the error is paired, as the faces are).

    python scripts/set_distances.py docs/bench/perceptual-linear hrdis ddrm
    python scripts/set_distances.py docs/bench/perceptual-linear hrdis reddiff --b-out docs/bench/perceptual-1000nfe

Needs the features a bench run saves (OUT/effnet_features/, written when the extra is installed). Lower is
better for both measures; they are not KID or FID values (another network).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from hrdis.experiments.bench import all_rows, is_error
from hrdis.experiments.perceptual import frechet_feature_distance, kernel_feature_distance
from hrdis.experiments.rows import effnet_feature_path, truth_key


def features(folder: str, method: str) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """column -> image -> (restoration features, truth features), for ``method`` (or an ablation tag)."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for r in all_rows(folder):
        if is_error(r) or (r.get("tag") or r["method"]) != method:
            continue
        p, q = effnet_feature_path(folder, r["key"]), effnet_feature_path(folder, truth_key(r["image"]))
        if p.is_file() and q.is_file():
            out.setdefault(r.get("column", r["task"]), {})[r["image"]] = (np.load(p), np.load(q))
    return out


def jackknife_se(estimate, n: int) -> float:
    """Standard error of ``estimate(keep)`` (a function of a boolean mask over n items) by the jackknife."""
    leave_one_out = np.array([estimate(np.arange(n) != i) for i in range(n)])
    return float(np.sqrt((n - 1) / n * ((leave_one_out - leave_one_out.mean()) ** 2).sum()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a bench or ablate folder with effnet_features/")
    parser.add_argument("a", help="method (or ablation tag) A")
    parser.add_argument("b", help="method (or ablation tag) B")
    parser.add_argument("--b-out", help="take B's rows and features from this folder (the same images)")
    args = parser.parse_args(argv)
    feats_a, feats_b = features(args.out, args.a), features(args.b_out or args.out, args.b)
    if not feats_a or not feats_b:
        sys.exit(f"set_distances.py: no saved features for {args.a if not feats_a else args.b}; run bench with the "
                 "perceptual extra installed")
    print(f"{args.out}: {args.a} against {args.b}, restorations vs truths (lower is better)")
    for col in sorted(set(feats_a) & set(feats_b)):
        shared = sorted(set(feats_a[col]) & set(feats_b[col]))
        if len(shared) < 3:
            continue
        a, b, truth = (np.stack([src[i][k] for i in shared]) for src, k in ((feats_a[col], 0), (feats_b[col], 0),
                                                                             (feats_a[col], 1)))

        def kid_gap(keep):
            return kernel_feature_distance(a[keep], truth[keep]) - kernel_feature_distance(b[keep], truth[keep])
        kid_a, kid_b = kernel_feature_distance(a, truth), kernel_feature_distance(b, truth)
        fd_a, fd_b = frechet_feature_distance(a, truth), frechet_feature_distance(b, truth)
        print(f"  {col} ({len(shared)} images): effnet_kid {args.a} {kid_a:.4f}, {args.b} {kid_b:.4f}, "
              f"difference {kid_a - kid_b:+.4f} (s.e. {jackknife_se(kid_gap, len(shared)):.4f}); "
              f"effnet_frechet {args.a} {fd_a:.1f}, {args.b} {fd_b:.1f}")


if __name__ == "__main__":
    main()
