"""`optmem bench <name>`: the hook optmem/cli.py calls, and `python -m optmem.bench`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import cost, fidelity, locomo, niah, scale, schedule

_MODULES = {"niah": niah, "locomo": locomo, "fidelity": fidelity, "scale": scale, "schedule": schedule,
            "cost": cost}


def _run(args: argparse.Namespace) -> int:
    _MODULES[args.bench_name].main_args(args)
    return 0


def add_bench_subparsers(bench: argparse.ArgumentParser) -> None:
    sub = bench.add_subparsers(dest="bench_name", metavar="{" + ",".join(_MODULES) + "}", required=True)
    for name, mod in _MODULES.items():
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0],
                           description=mod.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(func=_run, bench_name=name)


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``bench`` to a top-level ``add_subparsers()`` object. The chosen benchmark runs via
    ``args.func(args)`` (returns an exit code)."""
    bench = subparsers.add_parser("bench", help="run a benchmark (" + ", ".join(_MODULES) + ")",
                                  description="Benchmarks comparing optmem with plain-text alternatives at the same budget.")
    add_bench_subparsers(bench)
    return bench



def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="optmem bench")
    add_bench_subparsers(p)
    args = p.parse_args(argv)
    return args.func(args)
