"""Where optical memory keeps conversations: the :class:`Store` contract and its backends.

``open_store(target)`` takes a file path, ``":memory:"`` or an open ``sqlite3.Connection``.
"""

from __future__ import annotations

import os
import sqlite3

from optmem.store.base import (
    DatabaseNotFound,
    MissingDirectory,
    NotAnOptmemDatabase,
    PageRow,
    ReadOnlyStore,
    SchemaMismatch,
    SchemaTooNew,
    Store,
    StoreError,
    StoreFull,
    StorePermissionError,
    TamperedData,
    TurnPos,
    TurnRow,
    UnknownConversation,
    UnknownPage,
)
from optmem.store.sqlite import SQLiteStore

__all__ = [
    "DatabaseNotFound", "MissingDirectory", "NotAnOptmemDatabase", "PageRow", "ReadOnlyStore", "SQLiteStore",
    "SchemaMismatch", "SchemaTooNew", "Store", "StoreError", "StoreFull", "StorePermissionError", "TamperedData",
    "TurnPos", "TurnRow", "UnknownConversation", "UnknownPage", "open_store",
]


def open_store(target: str | os.PathLike | sqlite3.Connection, *, create: bool = True, readonly: bool = False) -> Store:
    """Open the optmem database at ``target`` (created if missing, unless ``create=False`` or
    ``readonly``; upgraded to the current schema unless read-only). See :meth:`SQLiteStore.open`."""
    return SQLiteStore.open(target, create=create, readonly=readonly)
