"""Every system a benchmark can run, by name: the text baselines and optmem's variants.

A benchmark names the systems it runs (its config validates them against ``SYSTEMS``) and
builds each with :func:`build`; everything after that goes through the System protocol
(protocol.py)."""

from __future__ import annotations

from typing import Callable

from optmem.config import MemoryConfig

from .baselines import FullTextSystem, RetrievalSystem, WindowSystem
from .common import memory_config
from .optmem_system import OptmemSystem
from .protocol import System


def _retrieval(name: str, cfg: MemoryConfig) -> System:
    from .embed import get_embedder

    return RetrievalSystem(get_embedder(), recent=cfg.recent_turns)


def _excerpts(cfg: MemoryConfig) -> MemoryConfig:
    return memory_config(cfg, reexpand={**cfg.reexpand.model_dump(), "unit": "excerpt"})


# name -> (name, the benchmark's MemoryConfig) -> System. The optmem variants differ from the
# given MemoryConfig in one setting each; "optmem" runs it as given.
SYSTEMS: dict[str, Callable[[str, MemoryConfig], System]] = {
    "window": lambda name, cfg: WindowSystem(),
    "retrieval": _retrieval,
    "full": lambda name, cfg: FullTextSystem(),
    "optmem": OptmemSystem,
    "optmem-verbatim": lambda name, cfg: OptmemSystem(name, memory_config(cfg, archive="verbatim")),
    "optmem-optical": lambda name, cfg: OptmemSystem(name, memory_config(cfg, archive="optical")),
    "optmem-excerpt": lambda name, cfg: OptmemSystem(name, _excerpts(cfg)),
}


def build(name: str, config: MemoryConfig) -> System:
    """The system called ``name``, set up from the benchmark's MemoryConfig."""
    try:
        factory = SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown system {name!r}; choose from {tuple(SYSTEMS)}") from None
    return factory(name, config)
