"""Image files in and out: PNG/JPEG <-> tensors in [-1, 1], crops, folders and tars of images.

Tensors are (B, 3, H, W) float32 in [-1, 1], the range the diffusion networks were trained on.
Writes are atomic (temporary file, then rename), so an interrupted run never leaves a half file, and
create files with the permissions the umask gives (0644 by default).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB, with a one-line error for a missing or unreadable file. Transparent
    pixels keep the colour stored under them (often black), with a warning."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            if _has_transparency(im):
                warnings.warn(f"{path} has transparent pixels; they are read as the colour stored under them "
                              f"(often black): flatten the image onto a background first", stacklevel=2)
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path} is not a readable image ({exc.__class__.__name__}); give a PNG or JPEG") from None


def _has_transparency(im: Image.Image) -> bool:
    """Whether any pixel of ``im`` is less than fully opaque."""
    if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
        return False
    alpha = im.convert("RGBA").getchannel("A")
    return alpha.getextrema()[0] < 255


# Face crops: how large the face appears against CelebA's crop (the bundled prior's training crop). "tight" makes
# the face fill about 20% more of the frame (about FFHQ's and CelebA-HQ's alignment), "loose" about 20% less.
CROPS = {"celeba": 1.0, "tight": 1.2, "loose": 0.8}


def crop_box(width: int, height: int, below_centre: float = 0.04, zoom: float = 1.0) -> tuple[int, int, int, int]:
    """The square that ``face_crop`` takes. At ``zoom`` 1, the square of the short side, centred
    ``below_centre`` x height below the image centre (keeps the whole face of an aligned CelebA crop).
    Another ``zoom`` scales that square's side by 1 / zoom about its centre: above 1 the face fills more of the
    frame, below 1 less, and the square may then reach outside the image (``face_crop`` pads it)."""
    side = min(width, height)
    top = int(round((height - side) / 2 + below_centre * height))
    top = max(0, min(height - side, top))
    left = (width - side) // 2
    if zoom == 1.0:
        return left, top, left + side, top + side
    if zoom <= 0:
        raise ValueError(f"zoom must be positive, got {zoom}")
    new_side = max(1, int(round(side / zoom)))
    left = int(round(left + (side - new_side) / 2))
    top = int(round(top + (side - new_side) / 2))
    return left, top, left + new_side, top + new_side


def face_crop(im: Image.Image, size: int, below_centre: float = 0.04, crop: str = "celeba",
              zoom: float | None = None) -> Image.Image:
    """Square crop (``crop_box`` at ``CROPS[crop]``, or at ``zoom`` when given), resized to ``size`` (Lanczos).
    Where a loose crop reaches outside the image, the image is extended by reflection (as FFHQ's alignment pads,
    without its blur), so no flat border appears that the face prior never saw."""
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; choose one of {', '.join(CROPS)}")
    left, top, right, bottom = crop_box(*im.size, below_centre=below_centre, zoom=CROPS[crop] if zoom is None else zoom)
    w, h = im.size
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))  # left, right, top, bottom
    if any(pad):
        arr = np.pad(np.asarray(im.convert("RGB")), ((pad[2], pad[3]), (pad[0], pad[1]), (0, 0)), mode="reflect")
        im = Image.fromarray(arr)
        left, top, right, bottom = left + pad[0], top + pad[2], right + pad[0], bottom + pad[2]
    return im.crop((left, top, right, bottom)).resize((size, size), Image.Resampling.LANCZOS)


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


def read_image(path: str | os.PathLike, size: int | None = None, crop: bool = False,
               expected: str = "") -> torch.Tensor:
    """Read an image as (1, 3, H, W) in [-1, 1].

    With ``size`` and ``crop``, a square face crop is taken and resized; with ``size`` alone the image
    must already be ``size`` x ``size`` (a clear error otherwise, naming ``expected``, e.g. "for x4 at
    64 px").
    """
    im = open_image(path)
    if size is not None:
        if crop:
            im = face_crop(im, size)
        elif im.size != (size, size):
            raise ValueError(size_error(path, im.size, size, expected))
    return pil_to_tensor(im)


def size_error(path, actual: tuple[int, int], size: int, expected: str = "") -> str:
    """The one-line message for an image of the wrong size: what was given, what is expected, the flag."""
    return (f"{path} is {actual[0]}x{actual[1]} px; give a {size}x{size} image{' ' + expected if expected else ''}, "
            f"or pass --resize (crop=True in Python) to square-crop and resize it")


def check_output_path(path: str | os.PathLike, flag: str = "--out") -> None:
    """Fail now, in one line, if a file cannot be written at ``path`` later: it names a folder, or its
    folder can neither be written nor created. A folder that does not exist yet is fine (it is created)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'restored.png'}")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: cannot create the folder {path.parent}, as {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {existing} is not writable; choose another place")


def write_image(x: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Write an image atomically (format from the suffix)."""
    path = Path(path)
    im = x if isinstance(x, Image.Image) else tensor_to_pil(x)
    buf = io.BytesIO()
    im.save(buf, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    atomic_write_bytes(path, buf.getvalue())
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it (creating the folder if need be).
    The file gets the umask's permissions (0644 by default), not ``mkstemp``'s 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


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


PANEL_MIN_SIZE = 256  # labelled grids show each panel at least this large, so a person can read it
LABEL_FONT_SIZE = 16


def labelled_grid(panels: list[tuple[torch.Tensor | None, str]], ncol: int | None = None,
                  min_size: int = PANEL_MIN_SIZE, pad: int = 4) -> Image.Image:
    """Tile (1, 3, H, W) images into one picture for a person: each panel enlarged by an integer factor
    with nearest-neighbour (pixels stay pixels) to at least ``min_size`` px, under its label (lines
    separated by newlines). A panel of None is left blank. Rows of ``ncol`` panels (default: one row)."""
    if not panels:
        raise ValueError("labelled_grid needs at least one panel")
    shown = [None if x is None else tensor_to_pil(x) for x, _ in panels]
    h, w = next((im.size[1], im.size[0]) for im in shown if im is not None)
    factor = max(1, -(-min_size // min(h, w)))
    tile_w, tile_h = w * factor, h * factor
    font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    lines = max(label.count("\n") + 1 for _, label in panels)
    label_h = lines * (LABEL_FONT_SIZE + 4) + 4
    ncol = ncol or len(panels)
    nrow = -(-len(panels) // ncol)
    grid = Image.new("RGB", (ncol * (tile_w + pad) + pad, nrow * (tile_h + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for i, ((_, label), im) in enumerate(zip(panels, shown)):
        r, c = divmod(i, ncol)
        left, top = pad + c * (tile_w + pad), pad + r * (tile_h + label_h + pad)
        draw.multiline_text((left + 2, top + 2), label, fill="black", font=font, spacing=4)
        if im is not None:
            grid.paste(im.resize((tile_w, tile_h), Image.Resampling.NEAREST), (left, top + label_h))
    return grid


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
