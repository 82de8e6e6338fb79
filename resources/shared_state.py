"""State that several processes must share (rate-limit buckets, circuit breakers), kept in
PostgreSQL: one small autocommit connection per process and database, tables created lazily.

Every process that talks to a vendor (a run, a sensor, a command line, a Celery worker) reaches
the same rows, so limits and breaker states hold across all of them. When the database cannot be
reached, callers fall back to their per-process state (``SharedStateUnavailable``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS platform;
CREATE TABLE IF NOT EXISTS platform.rate_limit_buckets (
  name TEXT PRIMARY KEY,
  rate DOUBLE PRECISION NOT NULL CHECK (rate > 0),
  capacity DOUBLE PRECISION NOT NULL CHECK (capacity >= 1),
  tokens DOUBLE PRECISION NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
  paused_until TIMESTAMP WITH TIME ZONE
);
CREATE TABLE IF NOT EXISTS platform.circuit_breakers (
  name TEXT PRIMARY KEY,
  state TEXT NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half-open')),
  fail_counter INTEGER NOT NULL DEFAULT 0,
  success_counter INTEGER NOT NULL DEFAULT 0,
  opened_at TIMESTAMP WITH TIME ZONE,
  last_error TEXT,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
"""


class SharedStateUnavailable(RuntimeError):
    """The shared-state database cannot be reached (callers fall back to per-process state)."""


class SharedStateStore:
    """One autocommit connection to ``dsn`` for this process, used under a lock.

    ``query`` runs one statement and returns its rows; a broken connection is reopened once.
    """

    def __init__(self, dsn: str, connect_timeout_s: int = 3) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._schema_ready = False

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            application_name="platform-shared-state",
        )
        if not self._schema_ready:
            with conn.transaction():
                # one process creates the tables; the others wait and find them
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('platform.shared_state'))")
                conn.execute(SCHEMA_SQL)
            self._schema_ready = True
        return conn

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self._connect()
                    cur = self._conn.execute(sql, params)
                    return cur.fetchall() if cur.description else []
                except psycopg.OperationalError as exc:
                    self.close_locked()
                    if attempt == 2:
                        raise SharedStateUnavailable(f"shared state: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


_STORES: dict[str, SharedStateStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(dsn: str) -> SharedStateStore:
    """The process's store for ``dsn`` (one connection per database, shared by every limiter
    and breaker of the process)."""
    with _STORES_LOCK:
        store = _STORES.get(dsn)
        if store is None:
            store = _STORES[dsn] = SharedStateStore(dsn)
        return store
