"""``hrdis train``: train a diffusion prior on a folder or tar of images (resumable, stops cleanly on a signal)."""

from __future__ import annotations


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a diffusion prior on a folder or tar of images")
    t.add_argument("--data", required=True, help="a folder or .tar of images")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl and prior/ (the exported prior)")
    t.add_argument("--size", type=int, default=64)
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--lr-decay-steps", type=int, default=0,
                   help="anneal the learning rate (cosine, to --lr-min) over the last this many of --steps")
    t.add_argument("--lr-min", type=float, help="the annealed learning rate (default: --lr / 20)")
    t.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0)
    t.add_argument("--max-index", type=int, default=9500,
                   help="skip files numbered above this (CelebA: 9501-10000 are held-out test faces); -1 for none")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--init-from", help="warm-start from a prior folder (e.g. the bundled prior) when no checkpoint is left")
    t.add_argument("--augment-scale", type=float, default=0.15,
                   help="random zoom of each training crop within a factor 1 + this either way (0: CelebA's crop)")
    t.add_argument("--augment-shift", type=float, default=0.08,
                   help="random translation of each training crop, up to this fraction of its side each way")
    t.add_argument("--augment-fraction", type=float, default=1.0,
                   help="the share of training crops that are re-cropped; the others keep CelebA's crop (default: all)")
    t.add_argument("--no-bf16", action="store_true", help="train in float32")
    t.add_argument("--device", default="cpu", help="where the network trains: cpu (default), cuda, cuda:1, ...")
    t.add_argument("--channels", type=int, help="new runs: first-level width (default 32, a multiple of 32)")
    t.add_argument("--res-blocks", type=int, help="new runs: residual blocks per level (default 1); with "
                   "--init-from: grow the prior to this many, each new block starting as the identity")
    t.add_argument("--channel-mult", help="new runs: width multiplier per level, comma-separated (default 1,2,4,4)")
    t.add_argument("--prediction", choices=["v", "eps"],
                   help="network target (new runs: v); given with --resume it switches a run (fine-tuning)")


def run(args) -> None:
    import signal
    import threading

    from ..training import TrainOptions, model_config, train

    widths = {"channels": args.channels, "channel_mult": args.channel_mult}
    if any(v is not None for v in widths.values()) and (args.resume or args.init_from):
        raise ValueError("--channels and --channel-mult shape a new network; a resumed or warm-started run keeps "
                         "its own: drop them or drop --resume / --init-from")
    if args.res_blocks is not None and args.resume:
        raise ValueError("--res-blocks shapes a new network or grows the --init-from prior; a resumed run keeps "
                         "its own: drop --res-blocks")
    deepen_to = args.res_blocks if args.init_from else None
    try:
        mult = None if args.channel_mult is None else [int(m) for m in args.channel_mult.split(",")]
    except ValueError:
        raise ValueError(f"--channel-mult takes integers separated by commas (e.g. 1,2,4,8), got {args.channel_mult!r}") from None
    config = model_config(args.channels, None if args.init_from else args.res_blocks, mult)
    # SIGTERM (a scheduler's stop) or Ctrl-C: finish the step, write a checkpoint, stop.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    folder = train(TrainOptions(
        data=args.data, out=args.out, size=args.size, steps=args.steps, batch=args.batch, lr=args.lr,
        lr_decay_steps=args.lr_decay_steps, lr_min=args.lr_min,
        max_minutes=args.max_minutes, checkpoint_minutes=args.checkpoint_minutes,
        max_index=None if args.max_index < 0 else args.max_index, resume=args.resume, init_from=args.init_from,
        deepen_to=deepen_to,
        bf16=not args.no_bf16, prediction=args.prediction, augment_scale=args.augment_scale,
        augment_shift=args.augment_shift, augment_fraction=args.augment_fraction, device=args.device),
        config=config, should_stop=stop.is_set)
    print(f"{'stopped on a signal; ' if stop.is_set() else ''}the EMA prior with the best mean held-out loss "
          f"over the three crops is in {folder}")
