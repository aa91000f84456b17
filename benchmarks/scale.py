"""Thin script: same as `optmem bench scale ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["scale", *sys.argv[1:]]))
