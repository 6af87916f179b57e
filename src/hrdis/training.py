"""Training a noise-prediction diffusion prior (DDPM's simple loss) on a folder or tar of images.

Loss: || net(alpha_t x_0 + sigma_t eps, t) - target ||^2 with t uniform on 0..T-1 (Ho et al., 2020), the
target being v = alpha_t eps - sigma_t x_0 (default; Salimans & Ho, 2022) or eps. Either way the prior's
noise prediction follows (``UNetPrior.eps``). v keeps x0_hat accurate near t = T, which an eps-network
of this size does not reach in CPU-hours of training (its x0_hat error there is its eps error x sigma/alpha).
The network is the project's ADM UNet on the public checkpoints' schedule, so a prior trained here
plugs into every solver like a downloaded one. CPU-minded: bf16 autocast + channels_last for the
forward/backward, an EMA of the weights for sampling, atomic resumable checkpoints every few minutes.
``device`` puts the network on an accelerator; data, augmentation and random draws stay on the CPU, so a run
draws the same batches on any device.

Faces come framed in many ways (FFHQ's alignment is tighter than CelebA's), so each training sample is a
random re-crop around the CelebA crop: zoom log-uniform in [1 / (1 + scale), 1 + scale], shifted by up to
``shift`` x its side each way, then a horizontal flip half the time. With ``augment_fraction`` below 1 only
that share of the samples is re-cropped and the rest keep CelebA's crop, so a batch mixes the two. The held-out
loss is measured on three fixed crops of the held-out images (``images.CROPS``: celeba, tight, loose), and the
exported prior is the checkpoint with the best mean of the three.

A warm start (``init_from``) continues a trained prior with a fresh optimiser, warmed up again; with
``deepen_to`` it first grows the network (``unet.deepen``), so more capacity starts from what was learned.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .images import CROPS, atomic_write_bytes, face_crop, image_stem_number, iter_image_source
from .priors import save_prior
from .schedule import VPSchedule
from .unet import ADMConfig, ADMUNet, deepen

# The bundled prior's architecture: 5.2M parameters, ~1.5 s per batch-32 step in bf16 on 2 cores,
# ~26 ms per forward pass, so one 150-step HRDIS solve stays well under 10 s.
FACE64_CONFIG = ADMConfig(image_size=64, num_channels=32, num_res_blocks=1, attention_resolutions=[8],
                          channel_mult=[1, 2, 4, 4], num_head_channels=32, use_scale_shift_norm=True,
                          resblock_updown=True, learn_sigma=False)


def model_config(channels: int | None = None, res_blocks: int | None = None,
                 channel_mult: list[int] | None = None) -> ADMConfig:
    """The bundled prior's architecture with the given widths changed: ``channels`` at the first level (a
    multiple of 32: GroupNorm takes 32 groups and attention heads 32 channels), ``res_blocks`` per level,
    ``channel_mult`` per level (four levels at 64 px: 64, 32, 16, 8)."""
    given = {"num_channels": channels, "num_res_blocks": res_blocks, "channel_mult": channel_mult}
    cfg = {**FACE64_CONFIG.to_dict(), **{k: v for k, v in given.items() if v is not None}}
    if cfg["num_channels"] <= 0 or cfg["num_channels"] % 32:
        raise ValueError(f"--channels must be a positive multiple of 32, got {cfg['num_channels']}")
    if cfg["num_res_blocks"] < 1 or not cfg["channel_mult"] or min(cfg["channel_mult"]) < 1:
        raise ValueError(f"--res-blocks and every --channel-mult entry must be at least 1, got "
                         f"{cfg['num_res_blocks']} and {cfg['channel_mult']}")
    return ADMConfig(**cfg)


@dataclass
class TrainOptions:
    data: str
    out: str
    size: int = 64
    steps: int = 20000
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 200
    lr_decay_steps: int = 0  # the last this many steps before ``steps`` anneal lr to lr_min (cosine)
    lr_min: float | None = None  # default lr / 20
    ema_decay: float = 0.999
    val_fraction: float = 0.02
    checkpoint_minutes: float = 5.0
    max_minutes: float | None = None
    max_index: int | None = 9500  # CelebA files above this number are the held-out test faces
    resume: bool = False
    init_from: str | None = None  # a prior folder: continue from its (EMA) weights with a fresh optimiser
    deepen_to: int | None = None  # with init_from: grow to this many residual blocks per level (unet.deepen)
    prediction: str | None = None  # "eps" or "v"; None keeps a resumed run's (new runs: "v")
    bf16: bool = True
    seed: int = 0
    augment_scale: float = 0.15  # random zoom within a factor 1 + this either way (0: CelebA's crop only)
    augment_shift: float = 0.08  # random translation up to this fraction of the crop's side each way
    augment_fraction: float = 1.0  # the share of training samples re-cropped; the others keep CelebA's crop
    device: str = "cpu"  # the network's; data, augmentation and random draws stay on the CPU


def load_dataset(source: str, size: int, max_index: int | None, zoom: float = 1.0) -> torch.Tensor:
    """All images of ``source`` face-cropped to ``size`` (``images.face_crop`` at ``zoom``), as a uint8
    (N, 3, size, size) tensor. Files numbered above ``max_index`` (the held-out test faces) are never read."""
    arrays = []
    for name, im in iter_image_source(source):
        num = image_stem_number(name)
        if max_index is not None and num is not None and num > max_index:
            continue
        arrays.append(np.asarray(face_crop(im, size, zoom=zoom)))
    if not arrays:
        raise ValueError(f"no training images found in {source}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def context_zoom(scale: float, shift: float) -> float:
    """The zoom (``images.crop_box``) of the square stored per image: wide enough for every augmented crop
    (side up to 1 + scale, shifted by up to ``shift`` x side) and for the loose validation crop."""
    return min(1 / ((1 + scale) * (1 + 2 * shift)), CROPS["loose"])


def crops_of_context(context: torch.Tensor, size: int, zoom_of_context: float, zoom: torch.Tensor,
                     shift: torch.Tensor) -> torch.Tensor:
    """Square crops of the context squares ``context`` (uint8 (N, 3, C, C), stored at ``zoom_of_context``) at
    ``zoom`` (N,) about their centres, moved by ``shift`` (N, 2; x and y, fractions of the crop's side),
    resized to ``size`` with Lanczos as ``images.face_crop`` resizes, as uint8 (N, 3, size, size)."""
    c = context.shape[-1]
    arrays = context.permute(0, 2, 3, 1).numpy()
    out = []
    for arr, z, (dx, dy) in zip(arrays, zoom.tolist(), shift.tolist()):
        side = c * zoom_of_context / z
        cx, cy = c / 2 + dx * side, c / 2 + dy * side
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        out.append(np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.LANCZOS, box=box)))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def random_crops(context: torch.Tensor, size: int, zoom_of_context: float, scale: float, shift: float,
                 generator: torch.Generator, fraction: float = 1.0) -> torch.Tensor:
    """The augmented training crops of ``context`` (see the module docstring): each is re-cropped with
    probability ``fraction``, else taken at CelebA's crop."""
    n = context.shape[0]
    zoom = ((torch.rand(n, generator=generator) * 2 - 1) * math.log1p(scale)).exp()
    moves = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift
    if fraction < 1:  # drawn only then, so that runs without it keep their random stream
        keep = torch.rand(n, generator=generator) >= fraction
        zoom = torch.where(keep, torch.ones_like(zoom), zoom)
        moves = torch.where(keep.view(-1, 1), torch.zeros_like(moves), moves)
    return crops_of_context(context, size, zoom_of_context, zoom, moves)


def to_model_range(batch_u8: torch.Tensor) -> torch.Tensor:
    return batch_u8.float() / 127.5 - 1.0


def diffusion_loss(model: ADMUNet, x0: torch.Tensor, schedule: VPSchedule, generator: torch.Generator | None = None,
                   t: torch.Tensor | None = None, noise: torch.Tensor | None = None, bf16: bool = False,
                   prediction: str = "eps") -> torch.Tensor:
    """Mean squared error of the network's target: eps, or v = alpha_t eps - sigma_t x_0. ``t`` and ``noise``
    are drawn on the CPU (from ``generator``) whatever ``x0``'s device, so a run draws the same on any device."""
    if t is None:
        t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=generator)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator)
    device = x0.device
    a = schedule.alpha(t.cpu()).view(-1, 1, 1, 1).to(device)
    s = schedule.sigma(t.cpu()).view(-1, 1, 1, 1).to(device)
    noise, t = noise.to(device), t.to(device)
    x_t = (a * x0 + s * noise).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(x_t, t)
    target = noise if prediction == "eps" else a * noise - s * x0
    return (pred[:, :3].float() - target).pow(2).mean()


def _save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def learning_rate(step: int, opts: TrainOptions, start: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps from ``start`` (where the optimiser began: 0, or the step of the
    weights a warm start took), constant, then a cosine anneal to ``lr_min`` over the last ``lr_decay_steps``
    steps before ``steps``. A fresh Adam's first updates are about lr per weight whatever the gradient's size,
    which shakes trained weights at the full rate. Annealing before a stop lowers the loss more than the same
    steps at the full rate; a later ``--resume`` with a larger ``steps`` restarts at the full rate."""
    lr = opts.lr * min(1.0, (step - start + 1) / opts.warmup)
    decay_start = opts.steps - opts.lr_decay_steps
    if opts.lr_decay_steps > 0 and step >= decay_start:
        lr_min = opts.lr / 20 if opts.lr_min is None else opts.lr_min
        frac = min(1.0, (step - decay_start) / opts.lr_decay_steps)
        lr = lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * frac))
    return lr


def train(opts: TrainOptions, config: ADMConfig | None = None, should_stop=None) -> Path:
    """Train (or resume) and export the EMA weights with the best mean held-out loss over the three crops as a
    prior folder at ``opts.out/prior``.

    ``should_stop()`` is asked after every step; when it returns True a checkpoint is written and training
    stops (the CLI wires it to SIGTERM/SIGINT, so a killed run loses no finished step)."""
    if opts.lr_decay_steps < 0 or opts.lr_decay_steps > opts.steps:
        raise ValueError(f"--lr-decay-steps must lie in [0, --steps], got {opts.lr_decay_steps}")
    if not (0 <= opts.augment_scale <= 0.5 and 0 <= opts.augment_shift <= 0.25 and 0 <= opts.augment_fraction <= 1):
        raise ValueError(f"--augment-scale must lie in [0, 0.5], --augment-shift in [0, 0.25] and --augment-fraction "
                         f"in [0, 1], got {opts.augment_scale}, {opts.augment_shift} and {opts.augment_fraction}")
    try:
        device = torch.device(opts.device)
    except RuntimeError:
        raise ValueError(f"--device {opts.device!r} is not a device PyTorch knows; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {opts.device}: this PyTorch sees no CUDA device; use --device cpu")
    out = Path(opts.out)
    ckpt_path = out / "checkpoint.pt"
    schedule = VPSchedule()
    torch.manual_seed(opts.seed)

    config = config or FACE64_CONFIG
    if config.image_size != opts.size:
        config = ADMConfig(**{**config.to_dict(), "image_size": opts.size})
    state = None
    if opts.resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}; start without --resume")
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        config = ADMConfig.from_dict(state["config"])
        # Runs from before v-prediction existed trained eps; --prediction can switch a resumed run (fine-tune).
        prediction = opts.prediction or state.get("prediction", "eps")
    elif ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} exists; pass --resume to continue it or choose another --out")
    if state is None:
        prediction = opts.prediction or "v"
    if prediction not in ("eps", "v"):
        raise ValueError(f"--prediction must be eps or v, got {prediction!r}")
    init_prior = init_net = None
    if opts.deepen_to is not None and not opts.init_from:
        raise ValueError("deepening grows a trained network: give the prior to grow with --init-from")
    if opts.init_from:
        from .priors import load_prior

        init_prior = load_prior(opts.init_from)
        init_net = init_prior.unet if opts.deepen_to is None else deepen(init_prior.unet, opts.deepen_to)
        config = init_net.config

    # Each image is stored once as a wider square at 1.5x the resolution the crops need, and re-cropped per step.
    zoom_of_context = context_zoom(opts.augment_scale, opts.augment_shift)
    data = load_dataset(opts.data, int(math.ceil(1.5 * opts.size / zoom_of_context)), opts.max_index,
                        zoom=zoom_of_context)
    n_val = max(1, int(len(data) * opts.val_fraction))
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(1234))
    val, train_set = data[perm[:n_val]], data[perm[n_val:]]

    model = ADMUNet(config).to(device, memory_format=torch.channels_last)
    ema = ADMUNet(config).to(device, memory_format=torch.channels_last).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=0.0)
    step, seen, wall, best = 0, 0, 0.0, None
    gen = torch.Generator().manual_seed(opts.seed)
    grown = None
    if init_prior is not None:
        # Without the optimiser state this is a warm start, not an exact resume: Adam's moments restart.
        model.load_state_dict(init_net.state_dict())
        ema.load_state_dict(init_net.state_dict())
        step = int(init_prior.meta.get("trained_steps", 0))
        if opts.deepen_to not in (None, init_prior.unet.config.num_res_blocks):
            grown = {"from_res_blocks": init_prior.unet.config.num_res_blocks, "at_step": step}
        seen = int(init_prior.meta.get("images_seen", 0))
        wall = float(init_prior.meta.get("train_wall_seconds", 0))
    opt_start = step
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, seen, wall = state["step"], state["seen"], state["wall"]
        best = state.get("best_heldout_mean")
        opt_start, grown = state.get("opt_start", 0), state.get("grown")
        gen.set_state(state["rng"])
        if prediction != state.get("prediction", "eps"):
            # The old average predicts the other target: restart the EMA from the current weights.
            ema.load_state_dict(model.state_dict())

    # A fixed validation batch per crop (images, timesteps, noise), so held-out losses compare across time.
    vgen = torch.Generator().manual_seed(99)
    val_ctx = val[:256]
    val_t = torch.randint(0, schedule.num_timesteps, (len(val_ctx),), generator=vgen)
    val_noise = torch.randn((len(val_ctx), 3, opts.size, opts.size), generator=vgen)
    val_x = {crop: to_model_range(crops_of_context(val_ctx, opts.size, zoom_of_context,
                                                   torch.full((len(val_ctx),), z), torch.zeros(len(val_ctx), 2))).to(device)
             for crop, z in CROPS.items()}

    def val_loss() -> dict[str, float]:
        with torch.no_grad():
            return {crop: float(diffusion_loss(ema.eval(), x, schedule, t=val_t, noise=val_noise, bf16=opts.bf16,
                                               prediction=prediction)) for crop, x in val_x.items()}

    def checkpoint(vl: dict[str, float]) -> bool:
        """Write the resumable checkpoint; export the EMA prior when its mean held-out loss is the best yet."""
        nonlocal best
        mean = sum(vl.values()) / len(vl)
        improved = best is None or mean < best
        best = mean if improved else best
        _save_checkpoint(ckpt_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                     "step": step, "seen": seen, "wall": wall, "rng": gen.get_state(),
                                     "config": config.to_dict(), "prediction": prediction,
                                     "best_heldout_mean": best, "opt_start": opt_start, "grown": grown})
        if improved:
            meta = {"trained_steps": step, "images_seen": seen, "train_wall_seconds": round(wall),
                    "batch": opts.batch, "lr": opts.lr, "ema_decay": opts.ema_decay,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    **({"grown": grown} if grown else {}),
                    "heldout_loss": vl["celeba"], "heldout_loss_crops": vl,
                    "augment": {"scale": opts.augment_scale, "shift": opts.augment_shift,
                                "fraction": opts.augment_fraction},
                    "data": f"{Path(opts.data).name}, files <= {opts.max_index}, face crop {opts.size}px",
                    "licence": "trained on CelebA: non-commercial research use only"}
            save_prior(out / "prior", ema, schedule, meta, prediction=prediction)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "seen": seen, "wall": round(wall, 3), "heldout_loss": vl["celeba"],
                                "heldout_loss_crops": vl, "exported": improved}) + "\n")
        return improved

    if init_prior is not None and state is None:
        checkpoint(val_loss())  # the starting weights' held-out losses: the bar the run must beat
    start = time.time()
    last_ckpt = time.time()
    bar = tqdm(total=opts.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    model.train()
    loss_avg = None
    while step < opts.steps:
        t0 = time.time()
        idx = torch.randint(0, len(train_set), (opts.batch,), generator=gen)
        x0 = to_model_range(random_crops(train_set[idx], opts.size, zoom_of_context, opts.augment_scale,
                                         opts.augment_shift, gen, opts.augment_fraction))
        flip = torch.rand(opts.batch, generator=gen) < 0.5
        x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0).to(device)
        lr = learning_rate(step, opts, opt_start)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = diffusion_loss(model, x0, schedule, generator=gen, bf16=opts.bf16, prediction=prediction)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower --lr and --resume")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(opts.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        step += 1
        seen += opts.batch
        dt = time.time() - t0
        wall += dt
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.4f}", img_s=f"{opts.batch / dt:.1f}", lr=f"{lr:.1e}")
        out_of_time = (opts.max_minutes is not None and time.time() - start > 60 * opts.max_minutes) or (
            should_stop is not None and should_stop())
        if time.time() - last_ckpt > 60 * opts.checkpoint_minutes or step == opts.steps or out_of_time:
            vl = val_loss()
            exported = checkpoint(vl)
            bar.write(f"step {step}: train loss {loss_avg:.4f}, held-out loss "
                      + ", ".join(f"{c} {v:.4f}" for c, v in vl.items())
                      + (", best mean so far: prior exported" if exported else "") + "; checkpoint saved")
            last_ckpt = time.time()
            if out_of_time:
                break
    bar.close()
    return out / "prior"
