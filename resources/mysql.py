"""Read-only access to the operational MySQL (MariaDB locally).

Every query passes the sqlglot guard (one plain SELECT), runs inside ``START TRANSACTION READ
ONLY`` with a server-side statement time limit, and binds its parameters. The login itself is
SELECT-only; the guard makes a mistake fail early with a reason instead of a permission error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pymysql
import pymysql.cursors
from pydantic import Field

from resources.errors import (
    QueryPermissionError,
    QuerySyntaxError,
    QueryTimeoutError,
    ReadOnlyViolation,
    ServiceUnavailable,
)
from resources.sql_guard import check_read_only

Params = Sequence[Any] | Mapping[str, Any] | None

_SYNTAX = {1064, 1149, 1052, 1054, 1146}  # syntax, ambiguous/unknown column, unknown table
_PERMISSION = {1044, 1045, 1142, 1143, 1227, 1370, 1792}  # 1792: write in a READ ONLY transaction
_TIMEOUT = {1969, 3024, 1317}  # MariaDB max_statement_time, MySQL max_execution_time, interrupted
_CONNECTION = {2003, 2006, 2013, 2055, 1040, 1203}


def classify_mysql_error(exc: pymysql.err.MySQLError, sql: str) -> Exception:
    """Map a driver error to the platform's named errors (syntax, permission, timeout, outage);
    anything else is returned unchanged."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if code in _SYNTAX:
        return QuerySyntaxError(f"MySQL syntax error ({code}): {message}")
    if code in _PERMISSION:
        return QueryPermissionError(f"MySQL permission denied ({code}): {message}")
    if code in _TIMEOUT:
        return QueryTimeoutError(f"MySQL statement time limit reached ({code}): {message}")
    if code in _CONNECTION or isinstance(exc, pymysql.err.OperationalError) and code is None:
        return ServiceUnavailable("mysql", f"({code}) {message}")
    unclassified: Exception = exc  # pymysql ships no type information
    return unclassified


# Dagster's resource base is generic over its own value; the bare form is its documented one.
class MySQLResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The operational MySQL, read-only. Verbs: ``query``, ``iter_query``, ``scalar``."""

    host: str
    port: int = 3306
    user: str
    password: str
    database: str
    statement_timeout_s: float = Field(default=30.0, description="server-side limit per statement")
    connect_timeout_s: float = 10.0
    max_rows: int = Field(
        default=100_000, description="refuse to buffer more rows than this in query()"
    )

    @contextmanager
    def _connect(self) -> Iterator[pymysql.connections.Connection]:
        try:
            conn = pymysql.connect(
                host=self.host,
                port=int(self.port),
                user=self.user,
                password=self.password,
                database=self.database,
                charset="utf8mb4",
                connect_timeout=self.connect_timeout_s,
                autocommit=False,
                cursorclass=pymysql.cursors.DictCursor,
            )
        except pymysql.err.MySQLError as exc:
            raise classify_mysql_error(exc, "") from exc
        try:
            yield conn
        finally:
            conn.close()

    def _limit_statement(self, cur: pymysql.cursors.Cursor, server_version: str) -> None:
        if "mariadb" in server_version.lower():
            cur.execute("SET SESSION max_statement_time = %s", (float(self.statement_timeout_s),))
        else:
            cur.execute(
                "SET SESSION MAX_EXECUTION_TIME = %s", (int(self.statement_timeout_s * 1000),)
            )

    @contextmanager
    def read_only_cursor(
        self, sql: str, params: Params = None, *, unbuffered: bool = False
    ) -> Iterator[pymysql.cursors.Cursor]:
        """Check ``sql``, open a read-only transaction with a time limit, execute, yield the cursor.

        Raises:
            ReadOnlyViolation: the statement is not one plain SELECT (nothing is sent).
            QuerySyntaxError, QueryPermissionError, QueryTimeoutError, ServiceUnavailable.
        """
        check_read_only(sql)
        with self._connect() as conn:
            cursor_cls = pymysql.cursors.SSDictCursor if unbuffered else pymysql.cursors.DictCursor
            try:
                with conn.cursor(cursor_cls) as cur:
                    self._limit_statement(cur, conn.get_server_info())
                    cur.execute("START TRANSACTION READ ONLY")
                    cur.execute(sql, params)
                    yield cur
                conn.rollback()
            except pymysql.err.MySQLError as exc:
                raise classify_mysql_error(exc, sql) from exc

    def query(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Run one SELECT and return its rows as dicts (at most ``max_rows``)."""
        with self.read_only_cursor(sql, params) as cur:
            rows = cur.fetchmany(self.max_rows + 1)
        if len(rows) > self.max_rows:
            raise ReadOnlyViolation(
                f"result exceeds max_rows={self.max_rows}; paginate or use iter_query", sql
            )
        return list(rows)

    def iter_query(
        self, sql: str, params: Params = None, batch_size: int = 5_000
    ) -> Iterator[list[dict[str, Any]]]:
        """Stream a SELECT's rows in batches from an unbuffered cursor."""
        with self.read_only_cursor(sql, params, unbuffered=True) as cur:
            while True:
                batch = cur.fetchmany(batch_size)
                if not batch:
                    return
                yield list(batch)

    def scalar(self, sql: str, params: Params = None) -> Any:
        rows = self.query(sql, params)
        if not rows:
            return None
        return next(iter(rows[0].values()))

    def server_version(self) -> str:
        with self._connect() as conn:
            return str(conn.get_server_info())
