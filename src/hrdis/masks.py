"""Seeded inpainting masks: float32 tensors of shape (1, 1, H, W) with 1 = observed, 0 = hole.

- ``random_pixel_mask``: exactly round(missing_fraction * H * W) pixels missing, at random;
- ``box_mask``: one square hole, centred or at a seeded position;
- ``freeform_mask``: free-form brush strokes as in DeepFill v2 / Palette, with a hole ratio inside
  a requested range (presets in ``FREEFORM_PRESETS``);
- ``load_mask``: a user-drawn PNG (white = observed, black = hole).

``size`` is an int for square images or (H, W). The same seed always gives the same mask.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError
from torch import Tensor

from .images import crop_box

__all__ = ["FREEFORM_PRESETS", "box_mask", "freeform_mask", "hole_ratio", "load_mask", "random_pixel_mask"]

# Hole-ratio ranges of the free-form inpainting tasks (as Palette bins its masks).
FREEFORM_PRESETS: dict[str, tuple[float, float]] = {"ff10": (0.1, 0.2), "ff20": (0.2, 0.3), "ff30": (0.3, 0.4)}


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size) and min(size) > 0):
        raise ValueError(f"the mask size must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def _to_mask(hole: np.ndarray) -> Tensor:
    return torch.from_numpy(~hole).float()[None, None]


def hole_ratio(mask: Tensor) -> float:
    """The fraction of hole (0) pixels of a mask."""
    return float((mask < 0.5).float().mean())


def random_pixel_mask(size: int | tuple[int, int], missing_fraction: float, seed: int) -> Tensor:
    """Exactly round(missing_fraction * H * W) pixels missing, chosen by a seeded permutation."""
    h, w = _hw(size)
    if not isinstance(missing_fraction, (int, float)) or not 0 <= missing_fraction <= 1:
        raise ValueError(f"missing_fraction must lie in [0, 1], got {missing_fraction!r}")
    g = torch.Generator().manual_seed(int(seed))
    missing = torch.randperm(h * w, generator=g)[: int(round(missing_fraction * h * w))]
    mask = torch.ones(h * w)
    mask[missing] = 0
    return mask.reshape(1, 1, h, w)


def box_mask(size: int | tuple[int, int], box: int, seed: int | None = None) -> Tensor:
    """One box x box square hole: centred when ``seed`` is None, else at a seeded position inside the image."""
    h, w = _hw(size)
    if not isinstance(box, (int, np.integer)) or isinstance(box, bool) or box < 1:
        raise ValueError(f"the box hole must be a positive number of pixels, got {box!r}")
    if box > h or box > w:
        raise ValueError(f"box hole of {box} px does not fit a {h}x{w} image; use a smaller --box")
    if seed is None:
        top, left = (h - box) // 2, (w - box) // 2
    else:
        rng = np.random.default_rng(seed)
        top, left = int(rng.integers(0, h - box + 1)), int(rng.integers(0, w - box + 1))
    mask = torch.ones(1, 1, h, w)
    mask[..., top:top + box, left:left + box] = 0
    return mask


def _brush_stroke(h: int, w: int, rng: np.random.Generator, shrink: float) -> np.ndarray:
    """One DeepFill-v2-style stroke: a zig-zag polyline of 4-11 segments with round joints and caps.

    DeepFill's parameters (brush width 12-40 px, segment length about diagonal / 8) are for 256 px
    images; widths are scaled to the image. ``shrink`` < 1 gives shorter, thinner strokes.
    """
    scale = min(h, w) / 256
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    radius = math.hypot(h, w) / 8 * shrink
    width = max(1, int(round(rng.uniform(12, 40) * scale * shrink)))
    num_vertices = int(rng.integers(4, 12))
    angle_min = mean_angle - rng.uniform(0, angle_range)
    angle_max = mean_angle + rng.uniform(0, angle_range)
    heading = rng.uniform(0, 2 * math.pi)  # DeepFill's zig-zag always runs rightwards; turn it at random
    vertices = [(rng.uniform(0, w), rng.uniform(0, h))]
    for i in range(num_vertices):
        angle = rng.uniform(angle_min, angle_max)
        angle = heading + (-angle if i % 2 == 0 else angle)  # alternate turns: a zig-zag, not a circle
        r = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
        x, y = vertices[-1]
        x = float(np.clip(x + r * math.cos(angle), 0, w - 1))
        y = float(np.clip(y + r * math.sin(angle), 0, h - 1))
        vertices.append((x, y))
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    draw.line(vertices, fill=1, width=width)
    half = width / 2
    for x, y in vertices:
        draw.ellipse((x - half, y - half, x + half, y + half), fill=1)
    return np.asarray(canvas, dtype=bool)


def freeform_mask(size: int | tuple[int, int], hole_ratio: tuple[float, float] | str = (0.2, 0.3), seed: int = 0,
                  max_strokes: int = 300) -> Tensor:
    """Free-form brush-stroke holes covering a fraction of the image inside ``hole_ratio`` = (lo, hi).

    Strokes are added one at a time until the hole fraction reaches lo; a stroke that would push it
    past hi is discarded and the following strokes are made smaller, so narrow ranges are still met.
    ``hole_ratio`` may also name a preset of ``FREEFORM_PRESETS`` ("ff10", "ff20", "ff30").
    Deterministic for a seed; gives up with a ValueError after ``max_strokes`` strokes.
    """
    h, w = _hw(size)
    if isinstance(hole_ratio, str):
        if hole_ratio not in FREEFORM_PRESETS:
            raise ValueError(f"unknown free-form preset {hole_ratio!r}; "
                             f"use one of {', '.join(FREEFORM_PRESETS)} or (lo, hi)")
        hole_ratio = FREEFORM_PRESETS[hole_ratio]
    try:
        lo, hi = (float(r) for r in hole_ratio)
    except (TypeError, ValueError):
        raise ValueError(f"hole_ratio must be a (lo, hi) pair of fractions, got {hole_ratio!r}") from None
    if not 0 < lo <= hi < 1:
        raise ValueError(f"hole_ratio must satisfy 0 < lo <= hi < 1, got ({lo}, {hi})")
    total = h * w
    if math.ceil(lo * total) > math.floor(hi * total):
        raise ValueError(f"no hole ratio in [{lo}, {hi}] exists on a {h}x{w} image; widen hole_ratio")
    rng = np.random.default_rng(seed)
    hole = np.zeros((h, w), dtype=bool)
    shrink = 1.0
    for _ in range(max_strokes):
        candidate = hole | _brush_stroke(h, w, rng, shrink)
        ratio = candidate.mean()
        if ratio > hi:
            shrink *= 0.8  # near the target a full stroke jumps past a narrow range
            continue
        hole = candidate
        if ratio >= lo:
            return _to_mask(hole)
    raise ValueError(f"could not draw free-form holes covering {lo:.0%}-{hi:.0%} of a {h}x{w} image in "
                     f"{max_strokes} strokes; widen hole_ratio or use a larger image")


def load_mask(path: str | os.PathLike, size: int | tuple[int, int],
              resize_from: tuple[int, int] | None = None) -> Tensor:
    """Read a mask image (white = observed, black = hole, threshold at half intensity) as (1, 1, H, W).

    ``resize_from``: the (width, height) of the image that was square-cropped and resized to ``size``
    (``images.face_crop``); a mask of that size is then cropped and resized alike, and a pixel stays
    observed only if every pixel it covers was (a box filter, then a full-white test), so no hole content
    counts as observed. A mask already at ``size`` is taken as it is.
    """
    h, w = _hw(size)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            gray = im.convert("L")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path} is not a readable image ({exc.__class__.__name__}); "
                         f"give a black-and-white PNG") from None
    if resize_from is not None and gray.size != (w, h):
        if gray.size != tuple(resize_from):
            raise ValueError(f"the mask {path} is {gray.size[0]}x{gray.size[1]} px but the image is "
                             f"{resize_from[0]}x{resize_from[1]}; draw the mask at the image's size")
        binary = gray.point(lambda v: 255 if v >= 128 else 0)
        resized = binary.crop(crop_box(*gray.size)).resize((w, h), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(resized) == 255).float()[None, None]
    if gray.size != (w, h):
        raise ValueError(f"the mask {path} is {gray.size[0]}x{gray.size[1]} px but the image is {w}x{h}; "
                         f"draw the mask at the image's size, or pass --resize to crop and resize both")
    return torch.from_numpy((np.asarray(gray, dtype=np.float32) / 255 >= 0.5).astype(np.float32))[None, None]
