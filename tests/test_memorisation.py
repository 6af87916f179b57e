"""scripts/memorisation.py: nearest training faces (mirrors included), and reading back a `hrdis sample` grid."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from hrdis import images

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("memorisation", ROOT / "scripts" / "memorisation.py")
memorisation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memorisation)


def test_nearest_finds_a_copy_and_a_mirrored_copy():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (3000, 3, 16, 16), generator=g, dtype=torch.uint8)  # more than one chunk
    to_range = memorisation.images_in_model_range
    queries = torch.cat([to_range(train[2500:2501]), to_range(train[7:8]).flip(-1),
                         to_range(train[100:101]) + 0.02])
    d, i, mirrored = memorisation.nearest(queries, train)
    assert list(i) == [2500, 7, 100] and list(mirrored) == [False, True, False]
    assert d[0] < 1e-2 and d[1] < 1e-2
    assert abs(d[2] - 0.01 * math.sqrt(3 * 8 * 8)) < 1e-2  # +0.02 in [-1, 1] is +0.01 in [0, 1] on every value
    d, i, mirrored = memorisation.nearest(queries[1:2], train, flip=False)
    assert i[0] != 7 and not mirrored[0] and d[0] > 1


def test_grid_panels_reads_back_the_samples_of_a_sample_grid(tmp_path):
    n, size = 10, 16
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    panels = [(x[i:i + 1], f"sample {i + 1}") for i in range(n)]  # as `hrdis sample` draws them
    images.write_image(images.labelled_grid(panels, ncol=math.ceil(n ** 0.5)), tmp_path / "grid.png")
    back = memorisation.grid_panels(str(tmp_path / "grid.png"), n, size)
    assert torch.equal(back, ((x + 1) * 127.5).round().to(torch.uint8))
    images.write_image(images.make_grid([x], nrow=math.ceil(n ** 0.5)), tmp_path / "plain.png")  # earlier grids
    assert torch.equal(memorisation.grid_panels(str(tmp_path / "plain.png"), n, size), back)
    with pytest.raises(ValueError, match="is not a grid of 17 samples"):
        memorisation.grid_panels(str(tmp_path / "plain.png"), 17, size)
