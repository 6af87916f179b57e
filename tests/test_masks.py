"""Inpainting masks: requested hole sizes, seeded determinism, and mask files."""

import numpy as np
import pytest
import torch
from PIL import Image

from hrdis.masks import FREEFORM_PRESETS, box_mask, freeform_mask, hole_ratio, load_mask, random_pixel_mask


def check_mask(mask, h, w):
    assert mask.shape == (1, 1, h, w) and mask.dtype == torch.float32
    assert ((mask == 0) | (mask == 1)).all()


@pytest.mark.parametrize("preset", list(FREEFORM_PRESETS))
def test_freeform_hits_the_requested_hole_ratio(preset):
    lo, hi = FREEFORM_PRESETS[preset]
    for seed in range(6):
        mask = freeform_mask(64, (lo, hi), seed=seed)
        check_mask(mask, 64, 64)
        assert lo <= hole_ratio(mask) <= hi, f"{preset}, seed {seed}: {hole_ratio(mask):.3f}"
    big = freeform_mask(256, preset, seed=0)
    assert lo <= hole_ratio(big) <= hi


def test_freeform_is_seeded():
    a = freeform_mask(64, (0.2, 0.3), seed=5)
    assert torch.equal(a, freeform_mask(64, (0.2, 0.3), seed=5))
    assert not torch.equal(a, freeform_mask(64, (0.2, 0.3), seed=6))


def test_freeform_makes_strokes_not_speckle():
    """Brush strokes are thick: most hole pixels have a hole pixel on each side."""
    hole = freeform_mask(128, (0.2, 0.3), seed=1)[0, 0] == 0
    inner = hole[1:-1, 1:-1] & hole[:-2, 1:-1] & hole[2:, 1:-1] & hole[1:-1, :-2] & hole[1:-1, 2:]
    assert inner.sum() > 0.5 * hole.sum()


def test_freeform_rejects_impossible_ranges():
    with pytest.raises(ValueError, match="hole_ratio"):
        freeform_mask(64, (0.3, 0.2), seed=0)
    with pytest.raises(ValueError, match="widen hole_ratio"):
        freeform_mask(4, (0.30, 0.31), seed=0)
    with pytest.raises(ValueError, match="widen hole_ratio"):
        freeform_mask(64, (0.5, 0.5001), seed=0, max_strokes=3)
    with pytest.raises(ValueError, match="preset"):
        freeform_mask(64, "ff50", seed=0)


def test_box_mask_area_and_position():
    mask = box_mask(64, 24)
    check_mask(mask, 64, 64)
    assert (mask == 0).sum() == 24**2
    assert (mask[0, 0, 20:44, 20:44] == 0).all()
    for seed in range(5):
        placed = box_mask((48, 64), 16, seed=seed)
        check_mask(placed, 48, 64)
        assert (placed == 0).sum() == 16**2
    assert not torch.equal(box_mask(64, 16, seed=0), box_mask(64, 16, seed=1))
    assert torch.equal(box_mask(64, 16, seed=3), box_mask(64, 16, seed=3))
    with pytest.raises(ValueError, match="box hole of 80 px does not fit a 64x64 image"):
        box_mask(64, 80)


def test_random_pixel_mask_has_the_exact_fraction():
    mask = random_pixel_mask((32, 48), 0.7, seed=0)
    check_mask(mask, 32, 48)
    assert (mask == 0).sum() == round(0.7 * 32 * 48)
    assert abs(hole_ratio(mask) - 0.7) < 1e-3
    assert torch.equal(mask, random_pixel_mask((32, 48), 0.7, seed=0))
    assert not torch.equal(mask, random_pixel_mask((32, 48), 0.7, seed=1))
    with pytest.raises(ValueError, match="missing_fraction"):
        random_pixel_mask(32, 1.2, seed=0)
    with pytest.raises(ValueError, match="size"):
        random_pixel_mask((32, 0), 0.5, seed=0)


def test_load_mask_round_trip_and_errors(tmp_path):
    mask = freeform_mask(32, (0.2, 0.3), seed=0)
    path = tmp_path / "mask.png"
    Image.fromarray((mask[0, 0].numpy() * 255).astype(np.uint8)).save(path)
    assert torch.equal(load_mask(path, 32), mask)
    assert torch.equal(load_mask(path, (32, 32)), mask)
    with pytest.raises(ValueError, match="32x32 px but the image is 64x64"):
        load_mask(path, 64)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mask(tmp_path / "missing.png", 32)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_mask(junk, 32)
