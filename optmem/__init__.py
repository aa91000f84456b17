"""optmem: long chat memory at a small token cost, by optical compression (DeepSeek-OCR)."""

from optmem.assembler import BudgetError, Context
from optmem.config import MemoryConfig
from optmem.errors import InvalidArgument
from optmem.memory import OpticalMemory, PageInfo, PinError, Recall
from optmem.turns import InvalidTurn, Turn

__all__ = [
    "BudgetError", "Context", "InvalidArgument", "InvalidTurn", "MemoryConfig", "OpticalMemory", "PageInfo", "PinError",
    "Recall", "Turn",
]
__version__ = "0.2.0"
