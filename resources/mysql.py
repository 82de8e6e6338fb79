"""Read-only access to the operational MySQL (MariaDB locally).

Every query passes the sqlglot guard (one plain SELECT), runs inside ``START TRANSACTION READ
ONLY`` with a server-side statement time limit, and binds its parameters. The login itself is
SELECT-only; the guard makes a mistake fail early with a reason instead of a permission error.

Connections come from one SQLAlchemy engine on pymysql per process and server (seed 002's
pooling and automatic reconnect): a pool with pre-ping and recycle, optional TLS. Results are
read from a server-side (unbuffered) cursor, so ``max_rows`` is enforced before rows pile up in
memory; a result cut short closes its connection instead of draining the rest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pymysql
import pymysql.cursors
import sqlalchemy as sa
from pydantic import Field

from resources.errors import (
    QueryPermissionError,
    QuerySyntaxError,
    QueryTimeoutError,
    ReadOnlyViolation,
    ServiceUnavailable,
)
from resources.sql_guard import ensure_read_only

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


_ENGINES: dict[tuple[Any, ...], sa.engine.Engine] = {}
_ENGINES_LOCK = threading.Lock()


# Dagster's resource base is generic over its own value; the bare form is its documented one.
class MySQLResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The operational MySQL, read-only. Verbs: ``query``, ``iter_query``, ``scalar``,
    ``inspector``."""

    host: str
    port: int = 3306
    user: str
    password: str
    database: str
    statement_timeout_s: float = Field(default=30.0, description="server-side limit per statement")
    connect_timeout_s: float = 10.0
    max_rows: int = Field(
        default=100_000, description="refuse to read more rows than this in query()"
    )
    pool_size: int = Field(default=5, description="connections kept open per process")
    pool_recycle_s: int = Field(
        default=1_800, description="reopen a pooled connection older than this (below wait_timeout)"
    )
    ssl_ca: str | None = Field(
        default=None,
        description="CA file: connect with TLS when set (else MYSQL_SSL_CA, read at run time)",
    )
    ssl_verify_identity: bool = Field(
        default=False, description="with TLS, also check the server's host name"
    )

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """A pooled DBAPI connection (pinged before use); closed back into the pool, or
        discarded with ``invalidate()`` by the caller."""
        try:
            conn = engine_for(self).raw_connection()
        except sa.exc.DBAPIError as exc:
            orig = exc.orig
            if isinstance(orig, pymysql.err.MySQLError):
                raise classify_mysql_error(orig, "") from exc
            raise ServiceUnavailable("mysql", str(exc)) from exc
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
        self, sql: str, params: Params = None, *, unbuffered: bool = True
    ) -> Iterator[pymysql.cursors.Cursor]:
        """Check ``sql``, open a read-only transaction with a time limit, execute, yield the cursor.

        The cursor is server-side (unbuffered) unless ``unbuffered=False``. If the caller stops
        early (an exception, or ``max_rows``), the connection is discarded rather than drained.

        Raises:
            ReadOnlyViolation: the statement is not one plain SELECT (nothing is sent).
            QuerySyntaxError, QueryPermissionError, QueryTimeoutError, ServiceUnavailable.
        """
        ensure_read_only(sql)
        with self._connect() as conn:
            raw = conn.driver_connection
            cursor_cls = pymysql.cursors.SSDictCursor if unbuffered else pymysql.cursors.DictCursor
            finished = False
            try:
                cur = raw.cursor(cursor_cls)
                self._limit_statement(cur, raw.get_server_info())
                cur.execute("START TRANSACTION READ ONLY")
                cur.execute(sql, params)
                yield cur
                cur.close()
                conn.rollback()
                finished = True
            except pymysql.err.MySQLError as exc:
                raise classify_mysql_error(exc, sql) from exc
            finally:
                if not finished:
                    # An unread unbuffered result would be drained row by row on close: drop
                    # the connection instead (the pool opens a fresh one).
                    conn.invalidate()

    def query(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Run one SELECT and return its rows as dicts; more than ``max_rows`` is refused while
        streaming (at most ``max_rows + 1`` rows are ever held)."""
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
        with self.read_only_cursor(sql, params) as cur:
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
            return str(conn.driver_connection.get_server_info())

    def inspector(self) -> sa.engine.Inspector:
        """SQLAlchemy's inspector over the pooled engine: schema discovery through the dialect's
        own catalog queries (the only way this platform reads ``information_schema``)."""
        try:
            return sa.inspect(engine_for(self))
        except sa.exc.DBAPIError as exc:
            orig = exc.orig
            if isinstance(orig, pymysql.err.MySQLError):
                raise classify_mysql_error(orig, "") from exc
            raise


def tls_settings(resource: MySQLResource) -> tuple[str | None, bool]:
    """(CA file, check the host name?): the resource's fields, else the optional
    ``MYSQL_SSL_CA`` / ``MYSQL_SSL_VERIFY_IDENTITY`` variables (read when connecting, so a
    deployment without TLS needs neither)."""
    if resource.ssl_ca:
        return resource.ssl_ca, resource.ssl_verify_identity
    ca = os.environ.get("MYSQL_SSL_CA") or None
    flag = os.environ.get("MYSQL_SSL_VERIFY_IDENTITY", "").strip().lower()
    return ca, resource.ssl_verify_identity or flag in ("1", "true", "yes")


def connect_args(resource: MySQLResource) -> dict[str, Any]:
    """pymysql connect arguments: charset, timeouts, and TLS when ``ssl_ca`` is set."""
    args: dict[str, Any] = {
        "charset": "utf8mb4",
        "connect_timeout": resource.connect_timeout_s,
        "autocommit": False,
    }
    ca, verify_identity = tls_settings(resource)
    if ca:
        args["ssl"] = {"ca": ca, "check_hostname": verify_identity}
    return args


def engine_for(resource: MySQLResource) -> sa.engine.Engine:
    """The process's engine for this server and login (one pool per process: a forked child
    builds its own)."""
    key = (
        os.getpid(),
        resource.host,
        int(resource.port),
        resource.user,
        resource.password,
        resource.database,
        *tls_settings(resource),
        resource.pool_size,
        resource.pool_recycle_s,
        resource.connect_timeout_s,
    )
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            url = sa.engine.URL.create(
                "mysql+pymysql",
                username=resource.user,
                password=resource.password,
                host=resource.host,
                port=int(resource.port),
                database=resource.database,
            )
            engine = sa.create_engine(
                url,
                connect_args=connect_args(resource),
                pool_size=resource.pool_size,
                max_overflow=resource.pool_size,
                pool_pre_ping=True,
                pool_use_lifo=True,  # sequential queries reuse the same warm connection
                pool_recycle=resource.pool_recycle_s,
            )
            _ENGINES[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled MySQL connection of this process (tests, shutdown)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
