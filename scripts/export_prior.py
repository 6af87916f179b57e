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
    p.add_argument("--max-shard-mb", type=float,
                   help="split the weights into files of at most this many MB (MiB), listed in model.safetensors.index.json")
    args = p.parse_args(argv)
    if args.max_shard_mb is not None and args.max_shard_mb <= 0:
        p.error("--max-shard-mb must be positive")
    prior = load_prior(args.source)
    meta = {**prior.meta, "weights_dtype": "float16 (trained and averaged in float32)"}
    meta.pop("notes", None)
    if args.history:
        meta["history"] = args.history
    max_bytes = None if args.max_shard_mb is None else int(args.max_shard_mb * 2**20)
    save_prior(args.dest, prior.unet, prior.schedule, meta, dtype=torch.float16, prediction=prior.prediction,
               max_shard_bytes=max_bytes)
    print(f"wrote {args.dest}: {meta.get('trained_steps')} steps, held-out loss {meta.get('heldout_loss')}")


if __name__ == "__main__":
    main()
