"""Does the prior tell a face from its phase-retrieval twins? For each held-out face x, the prior's
denoising error (the score ``hrdis.api.choose_twin`` uses) of x, -x, its 180-degree rotation and the
rotation's negative; counts how often x itself scores lowest.

Usage: python scripts/twin_check.py [--first 9901] [--n 16]
"""

from __future__ import annotations

import argparse

import torch

from hrdis.experiments import bench
from hrdis.api import TWIN_DRAWS, TWIN_FRACTIONS
from hrdis.nonlinear import PhaseRetrieval
from hrdis.priors import denoising_error, load_prior

NAMES = ["x", "-x", "rotated", "-rotated"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="../shared/data/celeba-10k.tar")
    ap.add_argument("--first", type=int, default=9901)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    prior = load_prior(None, autocast=torch.bfloat16)
    faces = bench.load_bench_images(args.images, prior.image_size, args.n, first=args.first)
    truth_wins = 0
    for face in faces:
        candidates = PhaseRetrieval().equivalents(face.image)
        errors = [denoising_error(prior, c, fractions=TWIN_FRACTIONS, draws=TWIN_DRAWS).item() for c in candidates]
        truth_wins += min(range(len(errors)), key=errors.__getitem__) == 0
        print(face.name, "  ".join(f"{name} {e:.4f}" for name, e in zip(NAMES, errors)), flush=True)
    print(f"the face itself scored lowest for {truth_wins} of {len(faces)} faces")


if __name__ == "__main__":
    main()
