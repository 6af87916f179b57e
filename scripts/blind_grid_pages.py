"""Count distorted faces in two sample grids blind: shuffle their faces together into numbered pages, judge
each face without knowing its grid, then tally per grid against the key.

    python scripts/blind_grid_pages.py pages docs/samples64.png OTHER/samples64.png --out blind/
    # judge blind/page_*.png; write the numbers of the distorted faces to blind/judged.json (a JSON list)
    python scripts/blind_grid_pages.py tally blind/

The grids are ``hrdis sample`` grids of the same call (64 faces, same seed), so face i of both starts from the
same noise: the tally also gives the faces distorted in one grid only and a two-sided sign test on them.
Pages hold 16 faces at 3x (nearest neighbour); the shuffle is seeded, and the key is written to key.json,
which is not to be opened before judging.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from math import comb
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memorisation import grid_panels  # noqa: E402


def pages(grids: list[str], out: Path, n: int, size: int, seed: int) -> None:
    cells = [(g, i, Image.fromarray(p.permute(1, 2, 0).numpy()))
             for g, src in enumerate(grids) for i, p in enumerate(grid_panels(src, n, size))]
    random.Random(seed).shuffle(cells)
    out.mkdir(parents=True, exist_ok=True)
    key, cell = {}, 3 * size
    for page in range((len(cells) + 15) // 16):
        sheet = Image.new("RGB", (8 * (cell + 8), 2 * (cell + 23)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (g, i, face) in enumerate(cells[page * 16:(page + 1) * 16]):
            number = page * 16 + k
            key[number] = [grids[g], i]
            r, c = divmod(k, 8)
            sheet.paste(face.resize((cell, cell), Image.NEAREST), (c * (cell + 8), r * (cell + 23) + 20))
            draw.text((c * (cell + 8) + 4, r * (cell + 23) + 4), str(number), fill="black")
        sheet.save(out / f"page_{page}.png")
    (out / "key.json").write_text(json.dumps({"grids": grids, "faces": key}, indent=1))
    print(f"wrote {page + 1} pages of {len(cells)} faces to {out}; list the distorted ones in {out / 'judged.json'}")


def tally(folder: Path) -> None:
    saved = json.loads((folder / "key.json").read_text())
    grids, key = saved["grids"], saved["faces"]
    judged = {int(b) for b in json.loads((folder / "judged.json").read_text())}
    distorted = {g: {i for b, (gg, i) in key.items() if gg == g and int(b) in judged} for g in grids}
    for g in grids:
        print(f"{g}: {len(distorted[g])} of {sum(gg == g for gg, _ in key.values())} distorted")
    if len(grids) == 2:
        a, b = (distorted[g] for g in grids)
        only_a, only_b = len(a - b), len(b - a)
        n = only_a + only_b
        p = min(1.0, 2 * sum(comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n) if n else 1.0
        print(f"distorted in {grids[0]} only: {only_a}; in {grids[1]} only: {only_b}; in both: {len(a & b)}; "
              f"two-sided sign test p = {p:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pages", help="write the shuffled pages and the key")
    p.add_argument("grids", nargs=2)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=64, help="faces per grid (default 64)")
    p.add_argument("--size", type=int, default=64, help="a face's side in the grid, px (default 64)")
    p.add_argument("--seed", type=int, default=1234)
    t = sub.add_parser("tally", help="count per grid from OUT/judged.json and OUT/key.json")
    t.add_argument("folder")
    args = ap.parse_args()
    try:
        if args.command == "pages":
            pages(args.grids, Path(args.out), args.n, args.size, args.seed)
        else:
            tally(Path(args.folder))
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"blind_grid_pages.py: {exc}")


if __name__ == "__main__":
    main()
