"""Thin script: same as `optmem bench schedule ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.schedule import main

if __name__ == "__main__":
    main(sys.argv[1:])
