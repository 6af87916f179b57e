"""Calibrate the plausibility check (``hrdis.plausibility``) of a prior and report how it does.

Scores the starting estimate of simulated measurements (per operator kind: the image itself, inpainting,
x4 and x8 super-resolution) of
- calibration faces: held-out CelebA files (default 009517-009644; never the evaluation faces 009901-);
- test faces: other held-out files (default 009645-009772), for the false-alarm rate on unseen faces;
- non-faces: scikit-image's photographs and textures (centre crops), and generated images (noise,
  gradients, stripes, shapes, flat colours); the bundled example face (examples/astronaut64.png) is reported
  apart.
The threshold per kind is the ``--quantile`` of the calibration faces' scores; it is written to the prior
folder's ``plausibility.json`` (with --write) and the table is printed in Markdown. Scores are cached per
kind in ``--cache`` so a run can be split (each kind takes about 2 minutes on one CPU core).

    OMP_NUM_THREADS=1 python scripts/calibrate_plausibility.py --images ../shared/data/celeba-10k.tar \
        --cache runs/plausibility --write src/hrdis/weights/face64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hrdis import images, load_prior, plausibility
from hrdis.experiments.bench import load_bench_images
from hrdis.tasks import get_task

KINDS = {"image": "denoise", "inpaint-box": "inpaint-box", "inpaint-ff20": "inpaint-ff20", "sr4": "sr4", "sr8": "sr8"}
SKIMAGE_NON_FACES = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel",
                     "brick", "camera", "coins", "grass", "gravel", "moon", "page", "text", "clock", "horse",
                     "checkerboard", "logo")


def skimage_images(size: int) -> dict[str, torch.Tensor]:
    import skimage.data

    out = {"astronaut": images.read_image(Path(__file__).resolve().parents[1] / "examples" / "astronaut64.png",
                                          size, crop=True)}
    for name in SKIMAGE_NON_FACES:
        arr = getattr(skimage.data, name)()
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        im = Image.fromarray(arr).convert("RGB")
        out[name] = images.pil_to_tensor(images.face_crop(im, size))
    return out


def generated_images(size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Non-face images anyone can regenerate: noise, gradients, stripes, shapes, flat colours."""
    rng = np.random.default_rng(seed)
    u = np.linspace(-1, 1, size)
    yy, xx = np.meshgrid(u, u, indexing="ij")
    out = {
        "noise": rng.uniform(-1, 1, (3, size, size)),
        "smooth noise": np.kron(rng.uniform(-1, 1, (3, size // 8, size // 8)), np.ones((8, 8))),
        "gradient": np.stack([xx, yy, -xx]),
        "stripes": np.stack([np.sign(np.sin(8 * np.pi * xx))] * 3) * 0.8,
        "rings": np.stack([np.sin(10 * np.pi * np.hypot(xx, yy))] * 3),
        "checker": np.stack([np.sign(np.sin(4 * np.pi * xx) * np.sin(4 * np.pi * yy))] * 3),
        "grey": np.zeros((3, size, size)),
        "red": np.stack([np.full((size, size), v) for v in (0.8, -0.8, -0.8)]),
        "sky": np.stack([0.2 * yy - 0.3, 0.2 * yy, 0.8 - 0.1 * yy]),
    }
    shapes = np.zeros((3, size, size))
    for _ in range(6):
        r0, c0 = rng.integers(0, size, 2)
        h, w = rng.integers(size // 8, size // 2, 2)
        shapes[:, r0:r0 + h, c0:c0 + w] = rng.uniform(-1, 1, (3, 1, 1))
    out["rectangles"] = shapes
    return {k: torch.from_numpy(np.clip(v, -1, 1)).float()[None] for k, v in out.items()}


def scores_for(prior, kind: str, xs: torch.Tensor, seeds: list[int], batch: int = 32) -> list[float]:
    """The check's score of each image's starting estimate under the kind's task (operator seeded per image)."""
    task = get_task(KINDS[kind])
    out = []
    for start in range(0, len(xs), batch):
        starts, weights = [], []
        for x, seed in zip(xs[start:start + batch], seeds[start:start + batch]):
            op = task.make_operator(x.shape[-1], seed)
            s, w = plausibility.start_and_weight(op(x[None]), op)
            starts.append(s)
            weights.append(torch.ones_like(s[:, :1]) if w is None else w)
        out += plausibility.score(prior, torch.cat(starts), torch.cat(weights)).tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, help="CelebA folder or tar")
    ap.add_argument("--prior", default="bundled")
    ap.add_argument("--calib-first", type=int, default=9517)
    ap.add_argument("--calib-n", type=int, default=128)
    ap.add_argument("--test-first", type=int, default=9645)
    ap.add_argument("--test-n", type=int, default=128)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--quantile", type=float, default=0.99)
    ap.add_argument("--cache", required=True, help="folder for the per-kind scores (resumable)")
    ap.add_argument("--write", help="prior folder to write plausibility.json into")
    ap.add_argument("--write-kinds", default="image,inpaint",
                    help="the kinds whose thresholds are written (the others are only reported: the check skips them)")
    args = ap.parse_args()
    if args.calib_first + args.calib_n > 9901 or args.test_first + args.test_n > 9901:
        raise SystemExit("the evaluation faces (009901-) are not for calibration: lower --*-first / --*-n")
    torch.set_num_threads(1)
    prior = load_prior(args.prior)
    size = prior.image_size
    calib = load_bench_images(args.images, size, args.calib_n, args.calib_first)
    test = load_bench_images(args.images, size, args.test_n, args.test_first)
    others = {**skimage_images(size), **generated_images(size)}
    groups = {"calibration faces": ([b.image for b in calib], [b.index for b in calib]),
              "test faces": ([b.image for b in test], [b.index for b in test]),
              "others": (list(others.values()), list(range(len(others))))}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    scores = {}
    for kind in args.kinds.split(","):
        path = cache / f"{kind}.json"
        if not path.is_file():
            found = {g: scores_for(prior, kind, torch.cat(xs), seeds) for g, (xs, seeds) in groups.items()}
            path.write_text(json.dumps({**found, "names": list(others)}))
        scores[kind] = json.loads(path.read_text())
    # One threshold per operator kind the check knows: inpainting's is the larger of its mask families'.
    own = {kind: float(np.quantile(s["calibration faces"], args.quantile)) for kind, s in scores.items()}
    written = {}
    for kind, limit in own.items():
        key = "inpaint" if kind.startswith("inpaint") else kind
        if key in args.write_kinds.split(","):
            written[key] = max(written.get(key, limit), limit)
    print("| measurement | threshold | false alarms: calibration faces | false alarms: test faces | example face "
          "flagged | non-faces flagged | non-faces missed |")
    print("|---|---|---|---|---|---|---|")
    for kind, s in scores.items():
        key = "inpaint" if kind.startswith("inpaint") else kind
        limit = written.get(key, own[kind])
        named = dict(zip(s["names"], s["others"]))
        example = named.pop("astronaut")
        missed = sorted(k for k, v in named.items() if v <= limit)
        checked = "" if key in written else " (not checked)"
        print(f"| {kind}{checked} | {limit:.3f} | {sum(v > limit for v in s['calibration faces'])}/"
              f"{len(s['calibration faces'])} | {sum(v > limit for v in s['test faces'])}/{len(s['test faces'])} | "
              f"{'yes' if example > limit else 'no'} | {len(named) - len(missed)}/{len(named)} | "
              f"{', '.join(missed) or '-'} |")
    if args.write:
        out = Path(args.write) / plausibility.CALIBRATION_FILE
        images.atomic_write_bytes(out, json.dumps({
            "thresholds": written, "quantile": args.quantile,
            "calibrated_on": f"CelebA {args.calib_first:06d}-{args.calib_first + args.calib_n - 1:06d} "
                             f"(face-cropped) by scripts/calibrate_plausibility.py"}, indent=1).encode())
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
