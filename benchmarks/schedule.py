"""Thin script: same as `optmem bench schedule ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["schedule", *sys.argv[1:]]))
