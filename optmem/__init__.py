"""optmem: long chat memory at a small token cost, by optical compression (DeepSeek-OCR)."""

from optmem.assembler import BudgetError, Context
from optmem.config import MemoryConfig
from optmem.memory import InvalidTurn, OpticalMemory, PageInfo, PinError, Recall, Turn

__all__ = ["BudgetError", "Context", "InvalidTurn", "MemoryConfig", "OpticalMemory", "PageInfo", "PinError", "Recall", "Turn"]
__version__ = "0.1.0"
