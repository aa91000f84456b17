"""Thin script: same as `optmem bench scale ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.scale import main

if __name__ == "__main__":
    main(sys.argv[1:])
