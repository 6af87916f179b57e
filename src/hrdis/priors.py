"""Diffusion priors: anything that maps (x_t, t) to a noise prediction, together with its schedule.

- ``GaussianPrior``: data x_0 ~ N(mean, std^2) per pixel, whose noise prediction is closed-form. Tests
  use it to check solvers against known posteriors.
- ``UNetPrior``: an ADM UNet (``hrdis.unet``), the project's own or a guided-diffusion checkpoint.
- ``DiffusersPrior``: a diffusers ``UNet2DModel`` (optional extra ``hrdis[diffusers]``).
- ``load_prior``: the bundled face prior, a prior folder (``config.json`` + ``model.safetensors``, or its
  shards listed in ``model.safetensors.index.json``), a guided-diffusion state dict (``.pt``) whose
  configuration is given, a preset, or inferred from its keys and shapes (``infer_adm_config``), or a
  diffusers ``UNet2DModel`` folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from contextlib import nullcontext
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .images import atomic_write_bytes
from .schedule import VPSchedule
from .unet import ADMConfig, ADMUNet

BUNDLED_PRIOR = "face64"
log = logging.getLogger(__name__)

# Configurations of the public guided-diffusion checkpoints (their sampling scripts' flags), selected by
# ``config="ffhq_10m"`` or automatically when the checkpoint's file name contains the preset's name.
ADM_PRESETS: dict[str, dict] = {
    "ffhq_10m": dict(image_size=256, num_channels=128, num_res_blocks=1, attention_resolutions=[16],
                     channel_mult=[1, 1, 2, 2, 4, 4], num_heads=4, num_head_channels=64, learn_sigma=True,
                     use_scale_shift_norm=True, resblock_updown=True, dropout=0.0),
    "256x256_diffusion_uncond": dict(image_size=256, num_channels=256, num_res_blocks=2,
                                     attention_resolutions=[32, 16, 8], channel_mult=[1, 1, 2, 2, 4, 4],
                                     num_heads=4, num_head_channels=64, learn_sigma=True,
                                     use_scale_shift_norm=True, resblock_updown=True, dropout=0.0),
}
DEFAULT_IMAGE_SIZE = 256


class Prior(nn.Module):
    """Interface: ``network(x_t, t)`` is the raw model output; ``eps(x_t, t)`` the noise prediction
    eps_theta(x_t, t) (float32, 3 channels). ``t`` is an int or integer tensor (a timestep 0..T-1, as the
    network was trained), or a float or floating tensor: a *continuous* timestep, which the network's
    embedding takes as it is and whose signal and noise scales are those of the continuous-time VP
    process the schedule discretises (``VPSchedule.continuous_alpha_bar``), as EDM-style samplers (DAPS)
    call the network. A scalar t applies to every image, a (B,) tensor gives one per image."""

    schedule: VPSchedule
    image_size: int | None = None
    channels: int = 3
    prediction: str = "eps"  # what network() predicts: "eps", or "v" = alpha_t eps - sigma_t x_0

    def network(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        return self.eps_and_variance(x_t, t)[0]

    def weights_id(self) -> str:
        """A short fingerprint of the network's weights (12 hex digits), the same on any device and
        precision: benchmark rows record it so that a folder never mixes two priors' results. It hashes
        each tensor's name, shape and first and last 4,096 values in float32, so it costs milliseconds
        even for a 500M-parameter network; two trained checkpoints differ in all of those."""
        h = hashlib.sha256()
        for name, t in sorted(self.state_dict().items()):
            flat = t.detach().reshape(-1)
            part = torch.cat([flat[:4096], flat[-4096:]]) if flat.numel() > 8192 else flat
            h.update(f"{name}{tuple(t.shape)}".encode())
            if part.is_floating_point():
                h.update(part.float().cpu().numpy().tobytes())
        return h.hexdigest()[:12]

    def eps_and_variance(self, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps_theta, v): v is the learned variance interpolation of a learn_sigma network (its output
        channels C..2C-1, nominally in [-1, 1]; guided-diffusion's "learned_range": log variance =
        (v + 1)/2 log beta_t + (1 - v)/2 log beta_tilde_t, ``learned_log_variance``), None when the network
        has no variance head."""
        t = self._t(t, x_t)
        out = self.network(x_t, t).float()
        eps = out[:, : self.channels]
        if self.prediction == "v":  # eps = sigma_t x_t + alpha_t v, from x_t = alpha_t x_0 + sigma_t eps
            a, s = self._scales(t, x_t)
            eps = s * x_t + a * eps
        variance = out[:, self.channels: 2 * self.channels] if out.shape[1] >= 2 * self.channels else None
        return eps, variance

    def _scales(self, t: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t), float32, shaped to broadcast over x_t: the schedule's at integer t, the
        continuous VP process's at floating t."""
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        if t.is_floating_point():
            abar = self.schedule.continuous_alpha_bar(t.cpu().double())
            a, s = abar.sqrt().float(), (1 - abar).sqrt().float()
        else:
            a, s = self.schedule.alpha(t.cpu()), self.schedule.sigma(t.cpu())
        return a.to(x_t.device).view(shape), s.to(x_t.device).view(shape)

    def x0(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Tweedie's one-step estimate (x_t - sigma_t eps_theta) / alpha_t (integer t)."""
        t = self._t(t, x_t)
        return self.schedule.x0(x_t, self.eps(x_t, t), t)

    @staticmethod
    def _t(t, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        return t.expand(x.shape[0]) if t.ndim == 0 else t

    def describe(self) -> str:
        return self.__class__.__name__


class GaussianPrior(Prior):
    """x_0 ~ N(mean, std^2) independently per pixel (mean, std: scalars or tensors broadcastable to x).

    Then x_t ~ N(alpha_t mean, alpha_t^2 std^2 + sigma_t^2) and the exact (MMSE) noise prediction is
    E[eps | x_t] = sigma_t (x_t - alpha_t mean) / (alpha_t^2 std^2 + sigma_t^2).
    """

    def __init__(self, mean=0.0, std=1.0, schedule: VPSchedule | None = None, image_size: int | None = None):
        super().__init__()
        self.schedule = schedule or VPSchedule()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.image_size = image_size

    def network(self, x_t, t):
        a, s = self._scales(t, x_t)
        return s * (x_t - a * self.mean) / (a**2 * self.std**2 + s**2)


def denoising_error(prior: Prior, x: torch.Tensor, *, fractions: tuple[float, ...], draws: int,
                    seed: int = 0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the prior's denoising loss: the mean of ||eps_theta(alpha_t x + sigma_t eps, t) - eps||^2
    over timesteps t = fraction * (T - 1) and ``draws`` noise draws each.

    These are the terms of the diffusion model's ELBO (Ho et al. 2020), so a lower value means x is more
    plausible under the prior; it tells a face from its photographic negative or its upside-down copy.
    The draws depend only on ``seed``, so images scored with one seed share their noise and their
    scores differ only through the images. ``weight`` (broadcastable to x, e.g. an inpainting mask) averages
    the error over the pixels it weights instead of all of them.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    last = prior.schedule.num_timesteps - 1
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for fraction in fractions:
            t = int(round(fraction * last))
            for _ in range(draws):
                eps = torch.randn(x.shape, generator=generator).to(x.device)
                x_t = prior.schedule.alpha(t) * x + prior.schedule.sigma(t) * eps
                err = (prior.eps(x_t, t) - eps).pow(2)
                if weight is None:
                    total += err.flatten(1).mean(1).double().cpu()
                else:
                    w = weight.expand_as(err)
                    total += ((err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-8)).double().cpu()
    return total / (len(fractions) * draws)


class UNetPrior(Prior):
    """An ADM UNet as a prior. ``autocast`` (e.g. torch.bfloat16) runs the network in lower precision;
    inputs and outputs stay float32, so the solvers' own arithmetic is unaffected.

    ``prediction`` says what the network outputs: "eps" (the public checkpoints) or "v" = alpha_t eps -
    sigma_t x_0 (Salimans & Ho, 2022), from which eps = sigma_t x_t + alpha_t v. A v-network needs no
    precision at t near T, where eps ~ x_t and an eps-network's small errors become large errors in
    x0_hat = (x_t - sigma_t eps) / alpha_t (the project's small CPU-trained prior uses it for that reason).
    """

    def __init__(self, unet: ADMUNet, schedule: VPSchedule | None = None, autocast: torch.dtype | None = None,
                 channels_last: bool = False, meta: dict | None = None, source: str = "", prediction: str = "eps"):
        super().__init__()
        if prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
        self.prediction = prediction
        self.unet = unet.eval().requires_grad_(False)
        self.schedule = schedule or VPSchedule()
        self.image_size = unet.config.image_size
        self.autocast = autocast
        self.channels_last = channels_last
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self.meta = meta or {}
        self.source = source

    def network(self, x_t, t):
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(x_t.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        with ctx:
            out = self._forward(x_t, t)
        return out.float().contiguous()

    def _forward(self, x_t, t):
        return self.unet(x_t, t)

    def describe(self) -> str:
        n = sum(p.numel() for p in self.unet.parameters())
        c = self.unet.config
        return (f"ADM UNet {n / 1e6:.2f}M parameters, {c.image_size}x{c.image_size}, "
                f"channels {c.num_channels}x{c.channel_mult}, from {self.source or 'memory'}")


# --------------------------------------------------------------------------------------------------
# Files


def bundled_prior_path() -> Path:
    return Path(str(resources.files("hrdis") / "weights" / BUNDLED_PRIOR))


WEIGHTS_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"  # Hugging Face's layout for weights split over several files


def save_prior(folder: str | os.PathLike, unet: ADMUNet, schedule: VPSchedule, meta: dict | None = None,
               dtype: torch.dtype = torch.float32, prediction: str = "eps", max_shard_bytes: int | None = None) -> Path:
    """Write a prior folder: ``config.json`` (ADM config, schedule, metadata) + ``model.safetensors``, or,
    when the weights exceed ``max_shard_bytes``, shards ``model-0000k-of-0000n.safetensors`` of at most that
    size (a tensor larger than it gets a shard to itself) listed in ``model.safetensors.index.json``. Every
    file is written to a temporary first and renamed, the index last, so a reader never sees a half folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    shards = _split_into_shards(state, max_shard_bytes)
    names = [WEIGHTS_FILE] if len(shards) == 1 else \
        [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        tmp = folder / f".{name}.tmp"
        save_file(shard, str(tmp))
        os.replace(tmp, folder / name)
    config = {"format": "hrdis-prior", "model": "adm", "adm": unet.config.to_dict(), "prediction": prediction,
              "schedule": schedule.to_dict(), "meta": meta or {}}
    atomic_write_bytes(folder / "config.json", json.dumps(config, indent=1).encode())
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                 "weight_map": {k: name for name, shard in zip(names, shards) for k in shard}}
        atomic_write_bytes(folder / SHARD_INDEX, json.dumps(index, indent=1).encode())
    # Weights of an earlier export in the other layout would be read instead of (or beside) these.
    stale = [folder / SHARD_INDEX] if len(shards) == 1 else [folder / WEIGHTS_FILE]
    stale += [f for f in folder.glob("model-*-of-*.safetensors") if f.name not in names]
    for f in stale:
        f.unlink(missing_ok=True)
    return folder


def _split_into_shards(state: dict, max_bytes: int | None) -> list[dict]:
    """``state`` in key order, cut into consecutive groups of at most ``max_bytes`` (one group when None)."""
    shards, size = [{}], 0
    for k, t in state.items():
        n = t.numel() * t.element_size()
        if max_bytes is not None and shards[-1] and size + n > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = t
        size += n
    return shards


def check_state_dict(unet: nn.Module, state: dict, source: str) -> None:
    """Raise a one-line ValueError naming the first offending keys if ``state`` does not fit ``unet``."""
    expected = unet.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise ValueError(f"checkpoint {source} does not match the configuration: {'; '.join(problems)}. "
                         f"Check its configuration (--prior-config on the command line, config= in Python)")


def _read_config(config) -> dict:
    if config is None:
        raise ValueError("a guided-diffusion checkpoint needs its configuration: pass --prior-config (config= in "
                         "Python), a JSON file of its options or a preset name")
    if isinstance(config, ADMConfig):
        return config.to_dict()
    if isinstance(config, dict):
        return config
    if isinstance(config, str) and config in ADM_PRESETS:
        return dict(ADM_PRESETS[config])
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path} (nor a preset: {', '.join(ADM_PRESETS)})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"config file {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def infer_adm_config(shapes: dict) -> tuple[dict, list[str]]:
    """The ADM architecture implied by a guided-diffusion state dict's keys and shapes.

    ``shapes`` maps key -> shape (a tuple, or a tensor whose ``.shape`` is used; a key listing works, so
    a 500M-parameter checkpoint's layout can be checked without its weights). Returns guided-diffusion
    options without ``image_size`` and with ``attention_resolutions`` as *downsampling factors* under the
    key ``attention_ds`` (sides in pixels need the image size), and the notes on what had to be assumed.
    Raises ValueError if the keys are not an unconditional ADM UNet's.
    """
    shp = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in shapes.items()}
    try:
        mc = shp["time_embed.0.weight"][1]
        in_channels = shp["input_blocks.0.0.weight"][1]
        out_channels = shp["out.2.weight"][0]
    except KeyError as exc:
        raise ValueError(f"not a guided-diffusion ADM state dict (no {exc.args[0]})") from None
    if "label_emb.weight" in shp:
        raise ValueError("class-conditional ADM models are not supported; use an unconditional checkpoint")

    def block_ids(prefix):
        ids = {int(m.group(1)) for k in shp if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
        return sorted(ids)

    n_out = len(block_ids("output_blocks"))
    # An output block ends a level when it holds an up-sampler after its ResBlock (and attention).
    ups = []
    for j in range(n_out):
        pos = [int(m.group(1)) for k in shp if (m := re.match(rf"output_blocks\.{j}\.(\d+)\.", k))]
        last = max(pos)
        is_res_up = last > 0 and f"output_blocks.{j}.{last}.in_layers.0.weight" in shp
        is_conv_up = last > 0 and f"output_blocks.{j}.{last}.conv.weight" in shp
        ups.append("res" if is_res_up else "conv" if is_conv_up else None)
    levels = sum(u is not None for u in ups) + 1
    if n_out % levels:
        raise ValueError("cannot infer the ADM block structure from the state dict's keys")
    nrb = n_out // levels - 1
    mult = []
    for level in range(levels):
        j = (levels - 1 - level) * (nrb + 1)  # output blocks run from the deepest level up
        c = shp[f"output_blocks.{j}.0.out_layers.3.weight"][0]
        mult.append(c // mc if c % mc == 0 else c / mc)
    attention_ds, attn_channels = [], []
    for level in range(levels):
        i = 1 + level * (nrb + 1)
        if f"input_blocks.{i}.1.qkv.weight" in shp:
            attention_ds.append(2**level)
            attn_channels.append(shp[f"input_blocks.{i}.1.qkv.weight"][1])
    attn_channels.append(shp["middle_block.1.qkv.weight"][1])
    notes = []
    if all(c % 64 == 0 for c in attn_channels):
        heads = dict(num_heads=4, num_head_channels=64)
        notes.append("attention heads cannot be inferred from shapes: assumed num_head_channels=64 "
                     "(guided-diffusion's public checkpoints); pass it in the config if it differs")
    else:
        heads = dict(num_heads=4, num_head_channels=-1)
        notes.append("attention heads cannot be inferred from shapes: assumed num_heads=4; pass "
                     "num_heads/num_head_channels in the config if they differ")
    res_key = "input_blocks.1.0.emb_layers.1.weight"
    cfg = dict(num_channels=mc, num_res_blocks=nrb, channel_mult=mult, attention_ds=attention_ds, **heads,
               learn_sigma=out_channels == 2 * in_channels,
               use_scale_shift_norm=shp[res_key][0] == 2 * shp["input_blocks.1.0.out_layers.3.weight"][0],
               resblock_updown=any(u == "res" for u in ups), in_channels=in_channels)
    return cfg, notes


def adm_config_for(shapes: dict, config=None, path: str | os.PathLike | None = None) -> tuple[ADMConfig, list[str]]:
    """The configuration to build for a guided-diffusion state dict: ``config`` (a dict, JSON file, ADMConfig
    or preset name; its keys win), else a preset whose name is in the file name, else what the keys and
    shapes imply (``infer_adm_config``), completed with image_size (default 256, noted)."""
    given = None if config is None else _read_config(config)
    name = Path(path).name if path is not None else ""
    preset = next((k for k in ADM_PRESETS if k in name), None) if given is None else None
    if preset:
        given = dict(ADM_PRESETS[preset])
    try:
        inferred, notes = infer_adm_config(shapes)
    except (ValueError, KeyError, IndexError) as exc:
        if given is None:
            raise ValueError(f"a guided-diffusion checkpoint needs its configuration (pass --prior-config, config= in "
                             f"Python: a JSON file of its options or a preset: {', '.join(ADM_PRESETS)}); it could "
                             f"not be inferred: {exc}") from None
        return ADMConfig.from_dict(given), []
    given = dict(given or {})
    if preset:
        notes = [f"configuration from the preset {preset!r} (matched the file name)"]
    elif any(k in given for k in ("num_heads", "num_head_channels")):
        notes = []
    if "image_size" not in given:
        notes.append(f"image_size cannot be inferred from a checkpoint: assumed {DEFAULT_IMAGE_SIZE}; "
                     f"if the model was trained at another size, pass --prior-config a JSON file holding "
                     f"{{\"image_size\": N}} (config={{'image_size': N}} in Python)")
    size = int(given.get("image_size", DEFAULT_IMAGE_SIZE))
    attention_ds = inferred.pop("attention_ds")
    inferred["attention_resolutions"] = [size // d for d in attention_ds]
    return ADMConfig.from_dict({"image_size": size, **inferred, **given}), notes


def load_prior(path: str | os.PathLike | None = None, config=None, device: str | torch.device = "cpu",
               autocast: torch.dtype | None = None, channels_last: bool = False):
    """Load a prior.

    ``path``: None or "bundled" for the bundled face prior; a prior folder (``config.json`` +
    ``model.safetensors`` or its shards); a diffusers ``UNet2DModel`` folder (needs ``pip install hrdis[diffusers]``);
    or a guided-diffusion state dict (``.pt``). For the latter, ``config`` is a dict or JSON file of
    guided-diffusion options or a preset name (``ADM_PRESETS``: "ffhq_10m", "256x256_diffusion_uncond");
    a preset is also picked when the file name contains its name; otherwise the architecture is inferred
    from the keys and shapes (``infer_adm_config``) and any keys of ``config`` (e.g. ``{"image_size": 64}``)
    override it. What had to be assumed is logged and kept in ``prior.meta["notes"]``. Keys are matched
    strictly.
    """
    if path is None or str(path) == "bundled":
        path = bundled_prior_path()
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"the bundled prior is missing from the installed package ({path}); reinstall hrdis")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prior not found: {path}")
    if path.is_dir() and _is_diffusers_folder(path):
        return load_diffusers_prior(path, device=device, autocast=autocast, channels_last=channels_last)
    prediction = "eps"
    if path.is_dir():
        state, cfg, schedule, meta, prediction = _read_prior_folder(path)
    else:
        state = _read_torch_state_dict(path)
        cfg, notes = adm_config_for(state, config, path)
        schedule, meta = VPSchedule(), ({"notes": notes} if notes else {})
        for note in notes:
            log.info("%s: %s", path.name, note)
    unet = ADMUNet(cfg)
    check_state_dict(unet, state, str(path))
    unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return UNetPrior(unet.to(device), schedule, autocast=autocast, channels_last=channels_last, meta=meta,
                     source=str(path), prediction=prediction)


def _read_prior_folder(folder: Path):
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"prior folder {folder} has no config.json; expected config.json and model.safetensors")
    try:
        config = json.loads(cfg_file.read_text())
        cfg = ADMConfig.from_dict(config["adm"])
        schedule = VPSchedule(**config.get("schedule", {}))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{cfg_file} is not an hrdis prior config ({exc.__class__.__name__}: {exc})") from None
    return _read_weights(folder), cfg, schedule, config.get("meta", {}), config.get("prediction", "eps")


def _read_weights(folder: Path) -> dict:
    """The state dict of ``model.safetensors``, or of the shards that ``model.safetensors.index.json`` lists."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index_file = folder / SHARD_INDEX
    if not index_file.is_file():
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"prior folder {folder} has no {WEIGHTS_FILE} (nor {SHARD_INDEX}); "
                                    f"expected config.json and model.safetensors")
        files = {WEIGHTS_FILE: None}
    else:
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
            files = {name: [k for k, v in weight_map.items() if v == name] for name in dict.fromkeys(weight_map.values())}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{index_file} is not a shard index ({exc.__class__.__name__}: {exc}); "
                             f"re-export the prior") from None
    state = {}
    for name, keys in files.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"prior folder {folder} lacks {name}, listed in {SHARD_INDEX}; copy every shard")
        try:
            part = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{path} is not a readable safetensors file ({exc}); re-export or re-download it") from None
        if keys is not None and sorted(part) != sorted(keys):
            raise ValueError(f"{path} does not hold the tensors {SHARD_INDEX} lists for it; re-export the prior")
        state.update(part)
    return state


def _read_torch_state_dict(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({exc.__class__.__name__}); "
                         f"is the download complete?") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


# --------------------------------------------------------------------------------------------------
# diffusers UNet2DModel folders (optional: pip install hrdis[diffusers])


def _is_diffusers_folder(folder: Path) -> bool:
    for cfg in (folder / "config.json", folder / "unet" / "config.json"):
        if cfg.is_file():
            try:
                return json.loads(cfg.read_text()).get("_class_name") == "UNet2DModel"
            except (json.JSONDecodeError, AttributeError):
                return False
    return False


class DiffusersPrior(UNetPrior):
    """A diffusers ``UNet2DModel`` predicting epsilon: eps = model(x_t, t).sample (first 3 channels when the
    model also predicts a variance). Inputs and outputs float32; ``autocast`` as for ``UNetPrior``."""

    def __init__(self, model: nn.Module, schedule: VPSchedule | None = None, autocast: torch.dtype | None = None,
                 channels_last: bool = False, meta: dict | None = None, source: str = ""):
        Prior.__init__(self)  # UNetPrior's __init__ expects an ADMUNet
        self.unet = model.eval().requires_grad_(False)
        self.schedule = schedule or VPSchedule()
        size = model.config.sample_size
        self.image_size = size if isinstance(size, int) else size[0]
        self.channels = model.config.in_channels
        self.autocast, self.channels_last = autocast, channels_last
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self.meta, self.source = meta or {}, source

    def _forward(self, x_t, t):
        return self.unet(x_t, t).sample

    def describe(self) -> str:
        n = sum(p.numel() for p in self.unet.parameters())
        return (f"diffusers UNet2DModel {n / 1e6:.2f}M parameters, {self.image_size}x{self.image_size}, "
                f"from {self.source or 'memory'}")


def _diffusers_schedule(folder: Path) -> tuple[VPSchedule, list[str]]:
    """The VP schedule from a scheduler config beside the model (pipeline layout) or inside its folder;
    the DDPM linear schedule when there is none."""
    for f in (folder / "scheduler_config.json", folder / "scheduler" / "scheduler_config.json",
              folder.parent / "scheduler" / "scheduler_config.json"):
        if f.is_file():
            sc = json.loads(f.read_text())
            if sc.get("prediction_type", "epsilon") != "epsilon":
                raise ValueError(f"{f}: prediction_type {sc['prediction_type']!r} is not supported (epsilon only)")
            if sc.get("beta_schedule", "linear") != "linear" or sc.get("trained_betas"):
                raise ValueError(f"{f}: beta_schedule {sc.get('beta_schedule')!r} is not supported (linear only)")
            return VPSchedule(beta_start=float(sc.get("beta_start", 1e-4)), beta_end=float(sc.get("beta_end", 0.02)),
                              num_timesteps=int(sc.get("num_train_timesteps", 1000))), []
    return VPSchedule(), ["no scheduler_config.json found: assumed the DDPM linear schedule (1e-4 to 0.02, T=1000)"]


def load_diffusers_prior(folder: str | os.PathLike, device: str | torch.device = "cpu",
                         autocast: torch.dtype | None = None, channels_last: bool = False) -> DiffusersPrior:
    """Load a diffusers ``UNet2DModel`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``),
    or a pipeline folder with a ``unet/`` subfolder, offline. Needs ``pip install hrdis[diffusers]``."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise ImportError(f"{folder} is a diffusers UNet2DModel; loading it needs the optional dependency: "
                          f"pip install 'hrdis[diffusers]' (or pip install diffusers)") from None
    schedule, notes = _diffusers_schedule(folder)
    try:
        model = UNet2DModel.from_pretrained(str(folder), local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ValueError(f"cannot load the diffusers model in {folder}: {str(exc).splitlines()[0]}") from None
    if getattr(model.config, "class_embed_type", None) or getattr(model.config, "num_class_embeds", None):
        raise ValueError("class-conditional diffusers models are not supported")
    for note in notes:
        log.info("%s: %s", folder, note)
    return DiffusersPrior(model.float().to(device), schedule, autocast=autocast, channels_last=channels_last,
                          meta={"notes": notes} if notes else {}, source=str(folder))
