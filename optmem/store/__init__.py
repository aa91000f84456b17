"""Where optical memory keeps conversations: the :class:`Store` contract and its backends.

``open_store(target)`` takes a file path, ``":memory:"`` or an open ``sqlite3.Connection`` (SQLite),
or a PostgreSQL DSN, ``postgresql://...`` or ``postgres://...`` (the optional ``postgres`` extra).
"""

from __future__ import annotations

import os
import sqlite3

from optmem.store.base import (
    DatabaseNotFound,
    MissingDirectory,
    NotAnOptmemDatabase,
    NoTurnToPop,
    PageRow,
    ReadOnlyStore,
    SchemaMismatch,
    SchemaTooNew,
    Store,
    StoreError,
    StoreFull,
    StorePermissionError,
    TamperedData,
    TurnOnSealedPage,
    TurnPos,
    TurnRow,
    UnknownConversation,
    UnknownPage,
)
from optmem.store.sqlite import SQLiteStore

# Imported lazily: psycopg is an optional dependency.
POSTGRES_DSN_PREFIXES = ("postgresql://", "postgres://")

__all__ = [
    "DatabaseNotFound", "MissingDirectory", "NoTurnToPop", "NotAnOptmemDatabase", "PageRow", "ReadOnlyStore",
    "SQLiteStore", "SchemaMismatch", "SchemaTooNew", "Store", "StoreError", "StoreFull", "StorePermissionError",
    "TamperedData", "TurnOnSealedPage", "TurnPos", "TurnRow", "UnknownConversation", "UnknownPage", "open_store",
]


def open_store(target: str | os.PathLike | sqlite3.Connection, *, create: bool = True, readonly: bool = False) -> Store:
    """Open the optmem database at ``target`` (created if missing, unless ``create=False`` or
    ``readonly``; upgraded to the current schema unless read-only). See :meth:`SQLiteStore.open`
    and, for a PostgreSQL DSN, :meth:`optmem.store.postgres.PostgresStore.open`."""
    if isinstance(target, str) and target.startswith(POSTGRES_DSN_PREFIXES):
        try:
            from optmem.store.postgres import PostgresStore
        except ImportError as e:
            if e.name not in ("psycopg", "psycopg_binary"):
                raise
            raise StoreError("a PostgreSQL DSN needs psycopg: pip install 'optmem[postgres]'") from None
        return PostgresStore.open(target, create=create, readonly=readonly)
    return SQLiteStore.open(target, create=create, readonly=readonly)
