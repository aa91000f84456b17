"""Shared fixtures. ``store_factory`` runs the store suite against every backend.

A backend joins the suite by adding a parameter here: a factory that opens (and reopens) one
database per test, names it for subprocesses, and can damage it behind the store's back (the only
part of the tests that knows how a backend keeps its data).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from optmem.store import Store, open_store


class SQLiteFactory:
    """One SQLite file per test, opened by path or through a connection the test makes."""

    def __init__(self, path: Path, *, via_connection: bool):
        self.path = path
        self.target = str(path)  # what another process passes to open_store
        self.via_connection = via_connection
        self._opened: list[tuple[Store, sqlite3.Connection | None]] = []

    def __call__(self, *, create: bool = True, readonly: bool = False) -> Store:
        """Open the test's database (again): every call is a new connection to the same data."""
        conn = sqlite3.connect(self.path, check_same_thread=False) if self.via_connection else None
        store = open_store(conn if conn is not None else self.path, create=create, readonly=readonly)
        self._opened.append((store, conn))
        return store

    def _raw(self, sql: str, params: tuple) -> None:
        conn = sqlite3.connect(self.path)
        with conn:
            assert conn.execute(sql, params).rowcount == 1
        conn.close()

    def corrupt_turn_text(self, conversation: str, turn: int, text: str) -> None:
        self._raw("UPDATE turns SET text = ? WHERE seq = ? AND conversation_id = "
                  "(SELECT id FROM conversations WHERE name = ?)", (text, turn, conversation))

    def corrupt_page_image(self, conversation: str, number: int, data: bytes) -> None:
        self._raw("UPDATE pages SET image = ? WHERE seq = ? AND conversation_id = "
                  "(SELECT id FROM conversations WHERE name = ?)", (data, number, conversation))

    def close_all(self) -> None:
        for store, conn in self._opened:
            store.close()
            if conn is not None:
                conn.close()


@pytest.fixture(params=["sqlite-path", "sqlite-connection"])
def store_factory(request, tmp_path):
    factory = SQLiteFactory(tmp_path / "store.db", via_connection=request.param == "sqlite-connection")
    yield factory
    factory.close_all()
