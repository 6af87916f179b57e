"""The ADM UNet of guided-diffusion (Dhariwal & Nichol, 2021), in its exact state-dict layout.

Module names and parameter shapes match guided-diffusion's ``UNetModel`` so that the public
checkpoints (``ffhq_10m.pt``, ``256x256_diffusion_uncond.pt``, ...) and the project's own prior
load with strict keys. The configuration uses guided-diffusion's own option names.
Only the unconditional model is implemented (no ``class_cond``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ADMConfig:
    """Architecture options, named as in guided-diffusion's ``model_and_diffusion_defaults``.

    ``attention_resolutions`` are feature-map sides in pixels (e.g. 16 means "at 16x16"),
    as in guided-diffusion's command line, not downsampling factors.
    """

    image_size: int = 64
    num_channels: int = 64
    num_res_blocks: int = 2
    attention_resolutions: list[int] = field(default_factory=lambda: [16, 8])
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    learn_sigma: bool = False
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    dropout: float = 0.0
    use_new_attention_order: bool = False
    in_channels: int = 3

    @classmethod
    def from_dict(cls, d: dict) -> "ADMConfig":
        """Build from a guided-diffusion style dict; tolerates its string forms ("16,8", "1,1,2")."""
        d = dict(d)
        if d.pop("class_cond", False):
            raise ValueError("class-conditional ADM models are not supported; use an unconditional checkpoint")
        for key in ("attention_resolutions", "channel_mult"):
            if isinstance(d.get(key), str):
                d[key] = [int(v) for v in d[key].split(",") if v.strip()]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"use_checkpoint", "use_fp16"})
        if unknown:
            raise ValueError(f"unknown ADM config keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: [cos | sin], as in guided-diffusion."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the autocast dtype (as guided-diffusion does)."""

    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


def normalization(channels: int) -> nn.Module:
    return GroupNorm32(32, channels)


class Upsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x) if self.use_conv else F.avg_pool2d(x, 2)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding, optionally resampling (``up``/``down``)."""

    def __init__(self, channels, emb_channels, dropout, out_channels=None, use_scale_shift_norm=False,
                 up=False, down=False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            normalization(out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        if self.updown:
            # Resample between the norm/activation and the conv, as guided-diffusion does.
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over spatial positions, with guided-diffusion's fused 1-D ``qkv`` conv."""

    def __init__(self, channels, num_heads=1, num_head_channels=-1, use_new_attention_order=False):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.new_order = use_new_attention_order
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, hgt, wid = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))  # (b, 3c, L)
        ch, length = c // self.num_heads, qkv.shape[-1]
        if self.new_order:  # [q of all heads | k | v]
            q, k, v = (t.reshape(b * self.num_heads, ch, length) for t in qkv.chunk(3, dim=1))
        else:  # legacy: per head [q | k | v]
            q, k, v = qkv.reshape(b * self.num_heads, 3 * ch, length).split(ch, dim=1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = a.transpose(1, 2).reshape(b, c, length)
        return (x + self.proj_out(h)).reshape(b, c, hgt, wid)


class TimestepEmbedSequential(nn.Sequential):
    """A Sequential that passes the time embedding to the blocks that take one."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    """guided-diffusion's ``UNetModel`` (unconditional). ``forward(x, t)`` returns the raw output:
    epsilon (3 channels), followed by the variance interpolation (3 more) when ``learn_sigma``."""

    def __init__(self, config: ADMConfig):
        super().__init__()
        self.config = cfg = config
        mc = cfg.num_channels
        ted = mc * 4
        attn_ds = {cfg.image_size // r for r in cfg.attention_resolutions}
        heads_up = cfg.num_heads if cfg.num_heads_upsample == -1 else cfg.num_heads_upsample

        def res(ch_in, ch_out, **kw):
            return ResBlock(ch_in, ted, cfg.dropout, ch_out, cfg.use_scale_shift_norm, **kw)

        def attn(ch, heads):
            return AttentionBlock(ch, heads, cfg.num_head_channels, cfg.use_new_attention_order)

        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        ch = input_ch = int(cfg.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_chans, ds = [ch], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, int(mult * mc))]
                ch = int(mult * mc)
                if ds in attn_ds:
                    layers.append(attn(ch, cfg.num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, True)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch, ch), attn(ch, cfg.num_heads), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(mc * mult))]
                ch = int(mc * mult)
                if ds in attn_ds:
                    layers.append(attn(ch, heads_up))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, True))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(), nn.Conv2d(input_ch, cfg.out_channels, 3, padding=1))
        # guided-diffusion zero-initialises the last conv of every residual branch and the output.
        for m in self.modules():
            if isinstance(m, ResBlock):
                nn.init.zeros_(m.out_layers[-1].weight), nn.init.zeros_(m.out_layers[-1].bias)
            elif isinstance(m, AttentionBlock):
                nn.init.zeros_(m.proj_out.weight), nn.init.zeros_(m.proj_out.bias)
        nn.init.zeros_(self.out[-1].weight), nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.config.num_channels))
        skips, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.to(x.dtype) if not torch.is_autocast_enabled() else h)


def _block_roles(cfg: ADMConfig) -> tuple[list[tuple], list[tuple]]:
    """What each of ``ADMUNet``'s input and output blocks is, in their order: ("conv",), ("res", level, j),
    ("down", level) and ("up", level, i) (the i-th output block of a level; its last one resamples)."""
    inputs = [("conv",)]
    for level in range(len(cfg.channel_mult)):
        inputs += [("res", level, j) for j in range(cfg.num_res_blocks)]
        if level != len(cfg.channel_mult) - 1:
            inputs.append(("down", level))
    outputs = [("up", level, i) for level in reversed(range(len(cfg.channel_mult)))
               for i in range(cfg.num_res_blocks + 1)]
    return inputs, outputs


def deepen(model: ADMUNet, num_res_blocks: int) -> ADMUNet:
    """The same network with ``num_res_blocks`` residual blocks per level, computing the same function.

    Growing a trained prior keeps what it learned and adds capacity to train further, where a new, deeper
    network would start from nothing. Each new block starts as the identity: guided-diffusion zero-initialises
    the last conv of a residual branch and an attention block's output, and a new decoder block, which also
    receives one more skip connection, gets a 1x1 shortcut that passes its input through and ignores that skip.
    The new encoder blocks sit after a level's trained ones, and the new decoder blocks right after the level's
    first one (which changes the width, so it cannot follow an identity), so every trained decoder block
    receives, as its skip, the value it was trained with.
    """
    old_cfg = model.config
    if num_res_blocks < old_cfg.num_res_blocks:
        raise ValueError(f"deepening needs at least the network's {old_cfg.num_res_blocks} residual blocks per "
                         f"level, got {num_res_blocks}")
    new_cfg = ADMConfig(**{**old_cfg.to_dict(), "num_res_blocks": num_res_blocks})
    new = ADMUNet(new_cfg).to(next(model.parameters()).device)
    added = num_res_blocks - old_cfg.num_res_blocks
    old_in, old_out = _block_roles(old_cfg)
    new_in, new_out = _block_roles(new_cfg)

    def out_role(role):
        _, level, i = role
        return ("up", level, i if i == 0 else i + added)

    for old_blocks, new_blocks, roles, new_roles, place in (
            (model.input_blocks, new.input_blocks, old_in, new_in, lambda r: r),
            (model.output_blocks, new.output_blocks, old_out, new_out, out_role)):
        for role, block in zip(roles, old_blocks):
            new_blocks[new_roles.index(place(role))].load_state_dict(block.state_dict())
    for role, block in zip(new_out, new.output_blocks):
        if 1 <= role[2] <= added:
            skip = block[0].skip_connection  # (ch + skip channels) -> ch: keep the first ch, drop the skip
            with torch.no_grad():
                skip.weight.zero_()
                skip.bias.zero_()
                skip.weight[:, :skip.out_channels, 0, 0] = torch.eye(skip.out_channels)
    for name in ("time_embed", "middle_block", "out"):
        getattr(new, name).load_state_dict(getattr(model, name).state_dict())
    return new
