"""Shared fixtures. ``store_factory`` runs the store suite against every backend.

A backend joins the suite by adding a parameter here: a factory that opens (and reopens) one
database per test, names it for subprocesses, and can damage it behind the store's back (the only
part of the tests that knows how a backend keeps its data).

PostgreSQL joins when ``OPTMEM_TEST_POSTGRES_DSN`` names a database (``.ci/postgres.sh start``
makes one); each test gets a fresh schema in it. Without the variable its tests are skipped,
except under CI (``CI=true``), where they fail: CI must never pass by leaving PostgreSQL out.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

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


POSTGRES_DSN_ENV = "OPTMEM_TEST_POSTGRES_DSN"


def postgres_dsn() -> str:
    """The test database's DSN; skips the test without one, fails it under CI."""
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {POSTGRES_DSN_ENV} is not set: CI must run the PostgreSQL tests "
                        "(.ci/run starts a server with .ci/postgres.sh)", pytrace=False)
        pytest.skip(f"{POSTGRES_DSN_ENV} is not set (start a server: DSN=$(bash .ci/postgres.sh start /tmp/optmem-pg))")
    return dsn


def with_search_path(dsn: str, schema: str, *settings: str) -> str:
    """``dsn`` with its sessions' search_path set to ``schema`` alone (and each ``name=value`` of
    ``settings`` set too)."""
    base, _, query = dsn.partition("?")  # urlunsplit would turn postgresql:///db into postgresql:/db
    options = " ".join(f"-c{s}" for s in (f"search_path={schema}", *settings))
    params = [(k, v) for k, v in parse_qsl(query) if k != "options"] + [("options", options)]
    return f"{base}?{urlencode(params, quote_via=quote)}"  # libpq reads "+" as itself, not a space


class PostgresFactory:
    """One fresh schema per test in the test database: quicker than a database per test."""

    def __init__(self, dsn: str):
        import psycopg

        self.schema = f"optmem_test_{uuid.uuid4().hex[:12]}"
        self.target = with_search_path(dsn, self.schema)
        self._admin = psycopg.connect(dsn, autocommit=True)
        self._admin.execute(f"CREATE SCHEMA {self.schema}")
        self._opened: list[Store] = []

    def __call__(self, *, create: bool = True, readonly: bool = False) -> Store:
        store = open_store(self.target, create=create, readonly=readonly)
        self._opened.append(store)
        return store

    def raw(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run ``sql`` in the test's schema behind the store's back."""
        with self._admin.transaction():
            self._admin.execute(f"SET LOCAL search_path = {self.schema}")
            cur = self._admin.execute(sql, params)
            return cur.fetchall() if cur.description else [(cur.rowcount,)]

    def corrupt_turn_text(self, conversation: str, turn: int, text: str) -> None:
        assert self.raw("UPDATE turns SET text = %s WHERE seq = %s AND conversation_id = "
                        "(SELECT id FROM conversations WHERE name = %s)",
                        (text.encode(), turn, conversation.encode())) == [(1,)]

    def corrupt_page_image(self, conversation: str, number: int, data: bytes) -> None:
        assert self.raw("UPDATE pages SET image = %s WHERE seq = %s AND conversation_id = "
                        "(SELECT id FROM conversations WHERE name = %s)",
                        (data, number, conversation.encode())) == [(1,)]

    def close_all(self) -> None:
        for store in self._opened:
            store.close()
        self._admin.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self._admin.close()


@pytest.fixture(params=["sqlite-path", "sqlite-connection", "postgres"])
def store_factory(request, tmp_path):
    if request.param == "postgres":
        factory = PostgresFactory(postgres_dsn())
    else:
        factory = SQLiteFactory(tmp_path / "store.db", via_connection=request.param == "sqlite-connection")
    yield factory
    factory.close_all()
