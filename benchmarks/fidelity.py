"""Thin script: same as `optmem bench fidelity ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["fidelity", *sys.argv[1:]]))
