"""Thin script: same as `optmem bench locomo ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.locomo import main

if __name__ == "__main__":
    main(sys.argv[1:])
