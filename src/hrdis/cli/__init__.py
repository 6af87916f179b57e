"""The ``hrdis`` command line: a thin layer over the Python API.

    hrdis solve --input face.png --task inpaint-box --out restored.png --grid grid.png
    hrdis solve --observed lowres.png --task sr4 --out restored.png
    hrdis info
    hrdis sample --n 64 --out samples.png
    hrdis train --data faces.tar --out runs/face64
    hrdis bench --suite linear --methods hrdis,reddiff,dps --images faces.tar --first 9901 --n 100 --out runs/t1
    hrdis ablate --param beta --values 0,0.1,0.2,0.5,1 --tasks inpaint-ff20,sr4 --images faces.tar --n 20 --out runs/beta
    hrdis diversity --input face.png --task sr16 --seeds 8 --out runs/div
    torchrun --nproc_per_node 4 -m hrdis bench --num-images 100 ...   (cells shared over processes; rank 0 merges)
"""

from __future__ import annotations

import argparse
import sys
import warnings

from . import ablate, bench, diversity, info, perf, sample, solve, train

SUBCOMMANDS = {"solve": solve, "info": info, "sample": sample, "bench": bench, "ablate": ablate,
               "diversity": diversity, "perf": perf, "train": train}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrdis", description="Restore images with a diffusion prior (HRDIS and peers).")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS.values():
        module.add_parser(sub)
    return parser


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, without the source line Python shows by default."""
    print(f"hrdis: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():  # restores showwarning when done (main is also called from tests)
        warnings.showwarning = _print_warning
        if argv[:1] == ["perf"]:  # its own parser
            return perf.run(argv[1:])
        return _run(build_parser().parse_args(argv))


def _run(args) -> int:
    try:
        status = SUBCOMMANDS[args.command].run(args) or 0  # bench/ablate: 1 when some cells failed
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"hrdis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hrdis: interrupted", file=sys.stderr)
        return 130
    return status
