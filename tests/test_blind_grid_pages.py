"""scripts/blind_grid_pages.py: every face of both grids appears once on the pages, and the tally follows the key."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from hrdis import images

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "blind_grid_pages.py"


def grid(path, n, size, seed):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    images.write_image(images.labelled_grid([(x[i:i + 1], f"sample {i + 1}") for i in range(n)],
                                            ncol=math.ceil(n ** 0.5)), path)
    return str(path)


def test_pages_key_and_tally(tmp_path):
    n, size = 9, 16
    a, b = grid(tmp_path / "a.png", n, size, 1), grid(tmp_path / "b.png", n, size, 2)
    out = tmp_path / "blind"
    subprocess.run([sys.executable, str(SCRIPT), "pages", a, b, "--out", str(out), "--n", str(n), "--size",
                    str(size)], check=True, capture_output=True)
    key = json.loads((out / "key.json").read_text())["faces"]
    assert sorted(map(tuple, key.values())) == sorted((g, i) for g in (a, b) for i in range(n))
    assert len(list(out.glob("page_*.png"))) == math.ceil(2 * n / 16)
    number = {tuple(v): int(k) for k, v in key.items()}
    # distorted: faces 0-3 of a, faces 0-1 and 8 of b -> a only {2, 3}, b only {8}, both {0, 1}
    judged = [number[(a, i)] for i in range(4)] + [number[(b, i)] for i in (0, 1, 8)]
    (out / "judged.json").write_text(json.dumps(judged))
    done = subprocess.run([sys.executable, str(SCRIPT), "tally", str(out)], check=True, capture_output=True, text=True)
    assert f"{a}: 4 of {n} distorted" in done.stdout and f"{b}: 3 of {n} distorted" in done.stdout
    assert "only: 2; in" in done.stdout and "only: 1; in both: 2" in done.stdout
    assert "p = 1.000" in done.stdout  # 2 against 1 discordant faces
