"""Export a training run's EMA prior as the bundled prior: float16 weights, its metadata kept.

    python scripts/export_prior.py /work/train_runs/face64/prior src/hrdis/weights/face64 --history "..."

Training and averaging stay in float32; the bundled copy is stored in float16 (half the size; the
network runs in fp32 or bf16 at load, and the fp16 rounding of weights moves outputs by ~1e-3).
"""

from __future__ import annotations

import argparse

import torch

from hrdis.priors import load_prior, save_prior


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="a prior folder written by hrdis train (RUN/prior)")
    p.add_argument("dest", help="the folder to write (e.g. src/hrdis/weights/face64)")
    p.add_argument("--history", help="how the weights were trained, for the metadata")
    args = p.parse_args(argv)
    prior = load_prior(args.source)
    meta = {**prior.meta, "weights_dtype": "float16 (trained and averaged in float32)"}
    meta.pop("notes", None)
    if args.history:
        meta["history"] = args.history
    save_prior(args.dest, prior.unet, prior.schedule, meta, dtype=torch.float16, prediction=prior.prediction)
    print(f"wrote {args.dest}: {meta.get('trained_steps')} steps, held-out loss {meta.get('heldout_loss')}")


if __name__ == "__main__":
    main()
