"""Is the prior copying its training faces? Nearest training faces of its samples, against held-out faces'.

Draws the samples of docs/samples64.png (``hrdis sample --n 64 --steps 50 --seed 0``: the same call, DDIM, eta 0)
and finds each one's nearest training face (files 000001-009500, CelebA crop at 64 px as the prior was trained on,
and their mirror images, since training flipped faces at random) by L2 distance on 32x32 images (2x2 averages),
pixel values in [0, 1] (3,072 values; RMS per value = L2 / 55.4). The same distance from held-out faces the
network never saw (default 009517-009580: neither the tuning nor the evaluation faces) to the training set says
what "near" is for a new face of this data set. A memorising prior has samples far nearer their neighbours than
held-out faces are.

    python scripts/memorisation.py --data ../shared/data/celeba-10k.tar --out docs/memorisation \
        --check-grid docs/samples64.png

Writes OUT/closest_pairs.png (the closest sample/training pairs over the closest held-out/training pairs,
labelled) and OUT/distances.json (every distance and neighbour, quantiles, the prior); prints the quantiles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hrdis import images
from hrdis.priors import load_prior
from hrdis.runtime import cpu_has_native_bf16, network_dtype
from hrdis.sampling import ddim_sample

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def small(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, 64, 64) in [-1, 1] -> (B, 3072): 32x32 by 2x2 averages, values in [0, 1]."""
    return ((F.avg_pool2d(x.float(), 2) + 1) / 2).flatten(1)


def nearest(queries: torch.Tensor, train: torch.Tensor, flip: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query image (B, 3, H, W in [-1, 1]), the L2 distance (``small``) to its nearest training image,
    that image's index, and whether its mirror image was the nearer."""
    q = small(queries)
    best_d = torch.full((len(q),), float("inf"))
    best_i = torch.zeros(len(q), dtype=torch.long)
    best_flip = torch.zeros(len(q), dtype=torch.bool)
    for mirrored in (False, True) if flip else (False,):
        for start in range(0, len(train), 2048):
            chunk = train[start:start + 2048]
            chunk = chunk.flip(-1) if mirrored else chunk
            d, i = torch.cdist(q, small(images_in_model_range(chunk))).min(dim=1)
            better = d < best_d
            best_d = torch.where(better, d, best_d)
            best_i = torch.where(better, i + start, best_i)
            best_flip = torch.where(better, torch.tensor(mirrored), best_flip)
    return best_d.numpy(), best_i.numpy(), best_flip.numpy()


def images_in_model_range(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 127.5 - 1.0


def load_faces(source: str, size: int, train_max: int, held_first: int, held_n: int):
    """(training names, training uint8 (N, 3, size, size), held-out names, held-out uint8), CelebA crops."""
    train_names, train, held_names, held = [], [], [], []
    for name, im in images.iter_image_source(source):
        num = images.image_stem_number(name)
        if num is None:
            continue
        if num <= train_max:
            train_names.append(name)
            train.append(np.asarray(images.face_crop(im, size)))
        elif held_first <= num < held_first + held_n:
            held_names.append(name)
            held.append(np.asarray(images.face_crop(im, size)))
    if not train or len(held) < held_n:
        sys.exit(f"memorisation.py: {source} has {len(train)} training faces (<= {train_max}) and {len(held)} of the "
                 f"{held_n} held-out faces from {held_first}; give the CelebA tar (../shared/data/celeba-10k.tar)")
    as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return train_names, as_tensor(train), held_names, as_tensor(held)


def grid_panels(path: str, n: int, size: int) -> torch.Tensor:
    """The n panels of a ``hrdis sample`` grid, ceil(sqrt(n)) per row, back at ``size`` px: a labelled grid
    (``images.labelled_grid``, today's) or an unlabelled one (``images.make_grid``, 2 px padding, earlier)."""
    grid = np.asarray(images.open_image(path))
    ncol = int(np.ceil(n ** 0.5))
    if grid.shape[1] == ncol * (size + 2) + 2:  # make_grid
        factor, label_h, pad = 1, 0, 2
    else:
        factor, label_h, pad = max(1, -(-images.PANEL_MIN_SIZE // size)), images.LABEL_FONT_SIZE + 8, 4
    tile = size * factor
    nrow = -(-n // ncol)
    if grid.shape[:2] != (nrow * (tile + label_h + pad) + pad, ncol * (tile + pad) + pad):
        raise ValueError(f"{path} ({grid.shape[1]}x{grid.shape[0]} px) is not a grid of {n} samples of {size} px")
    out = []
    for i in range(n):
        r, c = divmod(i, ncol)
        left, top = pad + c * (tile + pad), pad + r * (tile + label_h + pad) + label_h
        out.append(grid[top:top + tile:factor, left:left + tile:factor])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def quantiles(d: np.ndarray) -> dict[str, float]:
    return {f"q{int(q * 100):02d}": float(np.quantile(d, q)) for q in QUANTILES} | {"mean": float(d.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the CelebA tar (or folder) with files 000001-...")
    p.add_argument("--out", required=True, help="folder for closest_pairs.png and distances.json")
    p.add_argument("--prior", default="bundled")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="the network's precision (default as scripts/_bench.sh: bf16 where the CPU has it natively)")
    p.add_argument("--n", type=int, default=64, help="samples (default 64, as docs/samples64.png)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-max", type=int, default=9500, help="last training file number (default 9500)")
    p.add_argument("--held-out-first", type=int, default=9517)
    p.add_argument("--held-out-n", type=int, default=64)
    p.add_argument("--pairs", type=int, default=8, help="closest pairs shown (default 8)")
    p.add_argument("--no-flip", action="store_true", help="do not also compare with mirrored training faces")
    p.add_argument("--check-grid", help="a `hrdis sample` grid of the same call (docs/samples64.png): report how far "
                   "these samples are from its panels")
    args = p.parse_args()
    if args.held_out_first <= args.train_max:
        sys.exit(f"memorisation.py: --held-out-first {args.held_out_first} is a training file (<= --train-max "
                 f"{args.train_max}); give one above it")
    torch.set_num_threads(1)
    precision = args.precision or ("bf16" if cpu_has_native_bf16() else "fp32")
    prior = load_prior(args.prior, autocast=network_dtype(precision))
    size = prior.image_size
    shown = None
    if args.check_grid:
        try:
            shown = grid_panels(args.check_grid, args.n, size)
        except (ValueError, FileNotFoundError) as exc:
            sys.exit(f"memorisation.py: --check-grid: {exc}")
    train_names, train, held_names, held = load_faces(args.data, size, args.train_max, args.held_out_first,
                                                      args.held_out_n)
    print(f"{len(train)} training faces, {len(held)} held-out faces; sampling {args.n} ({args.steps} DDIM steps, "
          f"seed {args.seed}, {precision})", file=sys.stderr)
    samples = ddim_sample(prior, args.n, steps=args.steps, eta=0.0, seed=args.seed, progress=True)
    samples = ((samples + 1) * 127.5).round() / 127.5 - 1  # 8-bit, as images.tensor_to_pil writes them

    flip = not args.no_flip
    d_s, i_s, f_s = nearest(samples, train, flip)
    d_h, i_h, f_h = nearest(images_in_model_range(held), train, flip)
    report = {
        "prior": args.prior, "prior_meta": {k: v for k, v in getattr(prior, "meta", {}).items() if k != "history"},
        "precision": precision, "samples": {"n": args.n, "steps": args.steps, "eta": 0.0, "seed": args.seed},
        "distance": "L2 over 3x32x32 values in [0, 1] (2x2 averages of the 64 px images)",
        "training": f"{len(train)} faces {train_names[0]}..{train_names[-1]}" + (" and their mirror images" if flip else ""),
        "held_out": f"{len(held)} faces {held_names[0]}..{held_names[-1]}",
        "quantiles": {"samples": quantiles(d_s), "held_out": quantiles(d_h)},
        "samples_below_held_out_min": int((d_s < d_h.min()).sum()),
        "samples_below_held_out_q05": int((d_s < np.quantile(d_h, 0.05)).sum()),
        "per_sample": [{"sample": k + 1, "distance": float(d), "nearest": train_names[i], "mirrored": bool(f)}
                       for k, (d, i, f) in enumerate(zip(d_s, i_s, f_s))],
        "per_held_out": [{"image": held_names[k], "distance": float(d), "nearest": train_names[i], "mirrored": bool(f)}
                         for k, (d, i, f) in enumerate(zip(d_h, i_h, f_h))],
    }
    if shown is not None:
        diff = (((samples + 1) * 127.5).round() - shown.float()).abs()
        report["check_grid"] = {"grid": args.check_grid, "max_abs_diff_8bit": float(diff.max()),
                                "mean_abs_diff_8bit": float(diff.mean())}

    def pair_panels(queries, d, i, f, label):
        order = np.argsort(d)[:args.pairs]
        top = [(queries[k:k + 1], f"{label(k)}\nL2 {d[k]:.2f}") for k in order]
        bottom = [((lambda x: x.flip(-1) if f[k] else x)(images_in_model_range(train[i[k]:i[k] + 1])),
                   f"nearest: {Path(train_names[i[k]]).stem}" + ("\nmirrored" if f[k] else "")) for k in order]
        return top + bottom

    panels = (pair_panels(samples, d_s, i_s, f_s, lambda k: f"sample {k + 1}")
              + pair_panels(images_in_model_range(held), d_h, i_h, f_h, lambda k: f"held-out {Path(held_names[k]).stem}"))
    out = Path(args.out)
    images.write_image(images.labelled_grid(panels, ncol=args.pairs), out / "closest_pairs.png")
    images.atomic_write_bytes(out / "distances.json", (json.dumps(report, indent=1) + "\n").encode())

    print(f"nearest training face, L2 on 32x32 in [0, 1] ({report['training']}):")
    print("| | " + " | ".join(k for k in report["quantiles"]["samples"]) + " |")
    print("|---" * (len(QUANTILES) + 2) + "|")
    for name, q in report["quantiles"].items():
        print(f"| {name} ({len(d_s) if name == 'samples' else len(d_h)}) | " + " | ".join(f"{v:.2f}" for v in q.values())
              + " |")
    print(f"samples nearer than the nearest held-out face: {report['samples_below_held_out_min']} of {len(d_s)}; "
          f"nearer than the held-out 5% quantile: {report['samples_below_held_out_q05']}")
    if args.check_grid:
        print(f"against {args.check_grid}: max |diff| {report['check_grid']['max_abs_diff_8bit']:.0f}/255, "
              f"mean {report['check_grid']['mean_abs_diff_8bit']:.3f}/255")
    print(f"wrote {out / 'closest_pairs.png'}, {out / 'distances.json'}")


if __name__ == "__main__":
    main()
