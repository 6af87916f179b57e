"""Diffusion priors: anything that maps (x_t, t) to a noise prediction, together with its schedule.

- ``GaussianPrior``: data x_0 ~ N(mean, std^2) per pixel, whose noise prediction is closed-form. Tests
  use it to check solvers against known posteriors.
- ``UNetPrior``: an ADM UNet (``hrdis.unet``), the project's own or a guided-diffusion checkpoint.
- ``load_prior``: the bundled face prior, a prior folder (``config.json`` + ``model.safetensors``), or a
  guided-diffusion state dict (``.pt``) with its configuration.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .schedule import VPSchedule
from .unet import ADMConfig, ADMUNet

BUNDLED_PRIOR = "face64"


class Prior(nn.Module):
    """Interface: ``network(x_t, t)`` is the raw model output; ``eps(x_t, t)`` the noise prediction
    eps_theta(x_t, t) (float32, 3 channels). ``t`` is an integer timestep (int or (B,) tensor)."""

    schedule: VPSchedule
    image_size: int | None = None
    channels: int = 3

    def network(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        return self.network(x_t, self._t(t, x_t))[:, : self.channels].float()

    def x0(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Tweedie's one-step estimate (x_t - sigma_t eps_theta) / alpha_t."""
        a, s = self.schedule.alpha(t), self.schedule.sigma(t)
        return (x_t - s * self.eps(x_t, t)) / a

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
        a = self.schedule.alpha(t.cpu()).to(x_t.device).view(-1, *[1] * (x_t.ndim - 1))
        s = self.schedule.sigma(t.cpu()).to(x_t.device).view(-1, *[1] * (x_t.ndim - 1))
        return s * (x_t - a * self.mean) / (a**2 * self.std**2 + s**2)

    def eps(self, x_t, t):
        return self.network(x_t, self._t(t, x_t)).float()


class UNetPrior(Prior):
    """An ADM UNet as a prior. ``autocast`` (e.g. torch.bfloat16) runs the network in lower precision;
    inputs and outputs stay float32, so the solvers' own arithmetic is unaffected."""

    def __init__(self, unet: ADMUNet, schedule: VPSchedule | None = None, autocast: torch.dtype | None = None,
                 channels_last: bool = False, meta: dict | None = None, source: str = ""):
        super().__init__()
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
            out = self.unet(x_t, t)
        return out.float().contiguous()

    def describe(self) -> str:
        n = sum(p.numel() for p in self.unet.parameters())
        c = self.unet.config
        return (f"ADM UNet {n / 1e6:.2f}M parameters, {c.image_size}x{c.image_size}, "
                f"channels {c.num_channels}x{c.channel_mult}, from {self.source or 'memory'}")


# --------------------------------------------------------------------------------------------------
# Files


def bundled_prior_path() -> Path:
    return Path(str(resources.files("hrdis") / "weights" / BUNDLED_PRIOR))


def save_prior(folder: str | os.PathLike, unet: ADMUNet, schedule: VPSchedule, meta: dict | None = None,
               dtype: torch.dtype = torch.float32) -> Path:
    """Write a prior folder: ``config.json`` (ADM config, schedule, metadata) + ``model.safetensors``.
    Both files are written to temporaries first and renamed, so a reader never sees a half folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    tmp_w = folder / ".model.safetensors.tmp"
    save_file(state, str(tmp_w))
    config = {"format": "hrdis-prior", "model": "adm", "adm": unet.config.to_dict(),
              "schedule": schedule.to_dict(), "meta": meta or {}}
    tmp_c = folder / ".config.json.tmp"
    tmp_c.write_text(json.dumps(config, indent=1))
    os.replace(tmp_w, folder / "model.safetensors")
    os.replace(tmp_c, folder / "config.json")
    return folder


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
                         f"Check the config (or preset) given for this checkpoint")


def _read_config(config) -> dict:
    if config is None:
        raise ValueError("a guided-diffusion checkpoint needs its configuration: pass config= a dict or a JSON file")
    if isinstance(config, ADMConfig):
        return config.to_dict()
    if isinstance(config, dict):
        return config
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"config file {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def load_prior(path: str | os.PathLike | None = None, config=None, device: str | torch.device = "cpu",
               autocast: torch.dtype | None = None, channels_last: bool = False) -> UNetPrior:
    """Load a prior.

    ``path``: None or "bundled" for the bundled face prior; a prior folder (``config.json`` +
    ``model.safetensors``); or a guided-diffusion state dict (``.pt``), with ``config`` a dict or JSON
    file of guided-diffusion options. Keys are matched strictly.
    """
    if path is None or str(path) == "bundled":
        path = bundled_prior_path()
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"the bundled prior is missing from the installed package ({path}); reinstall hrdis")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prior not found: {path}")
    if path.is_dir():
        state, cfg, schedule, meta = _read_prior_folder(path)
    else:
        state = _read_torch_state_dict(path)
        cfg, schedule, meta = ADMConfig.from_dict(_read_config(config)), VPSchedule(), {}
    unet = ADMUNet(cfg)
    check_state_dict(unet, state, str(path))
    unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return UNetPrior(unet.to(device), schedule, autocast=autocast, channels_last=channels_last, meta=meta,
                     source=str(path))


def _read_prior_folder(folder: Path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_file, weights = folder / "config.json", folder / "model.safetensors"
    for f in (cfg_file, weights):
        if not f.is_file():
            raise FileNotFoundError(f"prior folder {folder} has no {f.name}; expected config.json and model.safetensors")
    try:
        config = json.loads(cfg_file.read_text())
        cfg = ADMConfig.from_dict(config["adm"])
        schedule = VPSchedule(**config.get("schedule", {}))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{cfg_file} is not an hrdis prior config ({exc.__class__.__name__}: {exc})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights} is not a readable safetensors file ({exc}); re-export or re-download it") from None
    return state, cfg, schedule, config.get("meta", {})


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
