"""Thin script: same as `optmem bench fidelity ...` (see docs/benchmarks.md)."""

import sys

from optmem.bench.fidelity import main

if __name__ == "__main__":
    main(sys.argv[1:])
