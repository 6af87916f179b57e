"""Image files in and out: PNG/JPEG <-> tensors in [-1, 1], crops, folders and tars of images.

Tensors are (B, 3, H, W) float32 in [-1, 1], the range the diffusion networks were trained on.
Writes are atomic (temporary file, then rename), so an interrupted run never leaves a half file.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB, with a one-line error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path} is not a readable image ({exc.__class__.__name__}); give a PNG or JPEG") from None


def face_crop(im: Image.Image, size: int, below_centre: float = 0.04) -> Image.Image:
    """Square crop of the short side, centred ``below_centre`` x height below the image centre,
    resized to ``size`` (keeps the whole face of an aligned CelebA crop)."""
    w, h = im.size
    side = min(w, h)
    top = int(round((h - side) / 2 + below_centre * h))
    top = max(0, min(h - side, top))
    left = (w - side) // 2
    return im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float32 in [-1, 1]."""
    arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) tensor in [-1, 1] -> RGB PIL image (values are clipped)."""
    if x.ndim == 4:
        x = x[0]
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def read_image(path: str | os.PathLike, size: int | None = None, crop: bool = False) -> torch.Tensor:
    """Read an image as (1, 3, H, W) in [-1, 1].

    With ``size`` and ``crop``, a square face crop is taken and resized; with ``size`` alone the image
    must already be ``size`` x ``size`` (a clear error otherwise).
    """
    im = open_image(path)
    if size is not None:
        if crop:
            im = face_crop(im, size)
        elif im.size != (size, size):
            raise ValueError(
                f"{path} is {im.size[0]}x{im.size[1]} px but the prior expects {size}x{size}; "
                f"resize it or pass --crop to take a square crop")
    return pil_to_tensor(im)


def write_image(x: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Write an image atomically (format from the suffix)."""
    path = Path(path)
    im = x if isinstance(x, Image.Image) else tensor_to_pil(x)
    buf = io.BytesIO()
    im.save(buf, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    atomic_write_bytes(path, buf.getvalue())
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_grid(images: list[torch.Tensor], nrow: int | None = None, pad: int = 2) -> torch.Tensor:
    """Tile (1, 3, H, W) or (B, 3, H, W) tensors into one (1, 3, H', W') image, white padding."""
    tiles = torch.cat([im.detach().float().cpu().reshape(-1, *im.shape[-3:]) for im in images])
    n, c, h, w = tiles.shape
    nrow = nrow or n
    ncol_rows = (n + nrow - 1) // nrow
    grid = torch.ones(c, ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = tile
    return grid[None]


def iter_image_source(source: str | os.PathLike) -> Iterator[tuple[str, Image.Image]]:
    """Yield (name, RGB image) from a folder or a .tar of images, in sorted name order."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for p in files:
            yield str(p.relative_to(source)), open_image(p)
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES)),
                             key=lambda m: m.name)
            for m in members:
                with Image.open(tar.extractfile(m)) as im:
                    yield m.name, im.convert("RGB")
    else:
        raise FileNotFoundError(f"{source} is neither a folder of images nor a tar of images")


def image_stem_number(name: str) -> int | None:
    """The number in a CelebA-style name such as ``celebA/009501.jpg`` (None if there is none)."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None
