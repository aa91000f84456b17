"""Build the API reference from the docstrings: `python docs/build_api.py [OUT]` (default docs/api/).

Needs pdoc (`pip install -e ".[dev]"`). The output is generated, so it is not committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The public surface, module by module (the packages' __all__ hide their submodules from pdoc).
MODULES = [
    "optmem", "optmem.memory", "optmem.config", "optmem.turns", "optmem.errors", "optmem.assembler", "optmem.reader",
    "optmem.exports", "optmem.profiles", "optmem.store", "optmem.retrieval", "optmem.reexpand", "optmem.codec",
    "optmem.server", "optmem.integrations", "renderers",
]


def build(out: Path) -> Path:
    import pdoc

    pdoc.pdoc(*MODULES, output_directory=out)
    return out / "index.html"


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "api"))
