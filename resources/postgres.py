"""PostgreSQL resource for the Supabase database and the external GFX source.

Pooled connections (psycopg 3 + psycopg_pool), explicit transactions, and streaming ``COPY``
in and out so bulk work never decodes rows in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from resources.errors import ServiceUnavailable

# What psycopg executes: a plain string or a composed statement (not a bare identifier).
Query = str | sql.SQL | sql.Composed

_POOLS: dict[tuple[str, str, int, int, int], ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def _pool_for(
    dsn: str,
    application_name: str,
    min_size: int,
    max_size: int,
    timeout_s: float,
    statement_timeout_ms: int,
) -> ConnectionPool:
    key = (dsn, application_name, min_size, max_size, statement_timeout_ms)
    kwargs: dict[str, Any] = {"application_name": application_name, "autocommit": False}
    if statement_timeout_ms:
        kwargs["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = ConnectionPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                kwargs=kwargs,
                timeout=timeout_s,
                open=False,
                name=f"{application_name}",
            )
            pool.open(wait=False)
            _POOLS[key] = pool
        return pool


def close_all_pools() -> None:
    """Close every pool opened in this process (tests and CLI exits call it)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


def redact_dsn(dsn: str) -> str:
    """Return the DSN with any password replaced, for logs and metadata."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable dsn>"
    host = info.get("host", "")
    port = str(info.get("port", ""))
    where = f"{host}:{port}" if port else f"{host}"
    return f"postgresql://{info.get('user', '')}@{where}/{info.get('dbname', '')}"


# Dagster's resource base is generic over its own value; the bare form is its documented one.
class PostgresResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A PostgreSQL database reached over a pooled psycopg 3 connection.

    Domain code asks for verbs (``fetch_all``, ``copy_query_to_table``...) or the
    ``connection()`` / ``transaction()`` escape hatches.
    """

    dsn: str = Field(description="libpq URL, e.g. postgresql://user@host:5432/db (from an EnvVar)")
    application_name: str = "pharmacy-data-platform"
    pool_min_size: int = 0
    pool_max_size: int = 4
    pool_timeout_s: float = Field(
        default=30.0, description="seconds to wait for a pooled connection"
    )
    statement_timeout_ms: int = Field(default=0, description="0 = server default")
    connect_attempts: int = 3

    # -- connections -----------------------------------------------------------------
    def _pool(self) -> ConnectionPool:
        return _pool_for(
            self.dsn,
            self.application_name,
            self.pool_min_size,
            self.pool_max_size,
            self.pool_timeout_s,
            self.statement_timeout_ms,
        )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """Yield a pooled connection (not in autocommit). The caller commits or rolls back;
        anything left open is rolled back when the connection returns to the pool.

        Raises:
            ServiceUnavailable: the server could not be reached after ``connect_attempts``.
        """
        pool = self._pool()

        @retry(
            retry=retry_if_exception_type((psycopg.OperationalError, PoolTimeout)),
            stop=stop_after_attempt(max(1, self.connect_attempts)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5),
            reraise=True,
        )
        def _checkout() -> psycopg.Connection:
            return pool.getconn()

        try:
            conn = _checkout()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ServiceUnavailable(redact_dsn(self.dsn), first_line) from exc
        try:
            yield conn
        finally:
            pool.putconn(conn)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """Yield a connection inside one transaction: committed on success, rolled back on error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    # -- small verbs -----------------------------------------------------------------
    def execute(self, query: Query, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        """Run one statement in its own transaction; return the row count."""
        with self.transaction() as conn:
            cur = conn.execute(query, params)
            return cur.rowcount

    def fetch_all(
        self, query: Query, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        with self.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    def fetch_one(
        self, query: Query, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        rows = self.fetch_all(query, params)
        return rows[0] if rows else None

    def fetch_value(
        self, query: Query, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> Any:
        with self.transaction() as conn:
            row = conn.execute(query, params).fetchone()
            return None if row is None else row[0]

    # -- COPY --------------------------------------------------------------------------
    @staticmethod
    def iter_copy_out(
        conn: psycopg.Connection,
        query: Query,
        params: Sequence[Any] | None = None,
        fmt: str = "binary",
    ) -> Iterator[bytes]:
        """Stream ``COPY (query) TO STDOUT`` as raw blocks on an open connection."""
        stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT {})").format(
            sql.SQL(query) if isinstance(query, str) else query, sql.SQL(fmt)
        )
        with conn.cursor() as cur, cur.copy(stmt, params) as copy:
            for block in copy:
                yield bytes(block)

    @staticmethod
    def copy_in(
        conn: psycopg.Connection,
        table: sql.Composable | str,
        columns: Sequence[str],
        blocks: Iterable[bytes],
        fmt: str = "binary",
    ) -> int:
        """Write raw ``COPY`` blocks into ``table(columns)`` on an open connection; return bytes."""
        target = sql.Identifier(*table.split(".")) if isinstance(table, str) else table
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
            target, sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(fmt)
        )
        written = 0
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for block in blocks:
                copy.write(block)
                written += len(block)
        return written

    def copy_query_into(
        self,
        target: PostgresResource,
        target_conn: psycopg.Connection,
        query: Query,
        table: sql.Composable | str,
        columns: Sequence[str],
        params: Sequence[Any] | None = None,
    ) -> int:
        """Stream ``query`` on this database into ``table`` through ``target_conn`` (binary COPY).

        The rows cross this process as opaque COPY blocks, never decoded. Returns bytes moved.
        """
        with self.connection() as src, src.transaction():
            return self.copy_in(target_conn, table, columns, self.iter_copy_out(src, query, params))

    def server_setting(self, name: str) -> str:
        return str(self.fetch_value("SELECT current_setting(%s)", (name,)))
