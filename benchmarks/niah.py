"""Thin script: same as `optmem bench niah ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.niah import main

if __name__ == "__main__":
    main(sys.argv[1:])
