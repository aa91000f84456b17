"""Thin script: same as `optmem bench niah ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["niah", *sys.argv[1:]]))
