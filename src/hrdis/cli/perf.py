"""``hrdis perf``: the performance report; it has its own parser (``hrdis.experiments.perf``)."""

from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("perf", help="performance report: step time split, overhead, batch throughput, memory vs DPS "
                   "(hrdis perf --help)", add_help=False)


def run(argv: list[str]) -> int:
    from ..experiments.perf import main

    return main(argv)
