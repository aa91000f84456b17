"""Thin script: same as `optmem bench locomo ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["locomo", *sys.argv[1:]]))
