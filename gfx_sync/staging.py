"""Shared mechanics of every sync operation: column checks, the per-table lock, binary ``COPY``
between the two databases into constraint-free staging tables, and the read horizon."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg import sql

from gfx_sync import transform as tf
from gfx_sync.specs import SOURCE_SYSTEM, TIMESTAMP_COLUMN, TableSpec
from resources.errors import PlatformError
from resources.state import get_cursor

DOMAIN = "gfx_sync"
COPY_BUFFER_BYTES = 1 << 20
# stamps a watermark can take (psycopg loads years 1..9999; a margin keeps time zones in range)
WATERMARK_RANGE = ("0002-01-01 00:00:00+00", "9998-01-01 00:00:00+00")


class SchemaDriftError(PlatformError):
    """Source and target columns differ; the message lists every difference."""


def table_ident(spec: TableSpec) -> sql.Composable:
    return sql.Identifier("public", spec.table)


def key_array(spec: TableSpec) -> sql.Composable:
    return sql.SQL("%s::{}[]").format(sql.SQL(spec.key_type))


def table_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (f"public.{table}",),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def checked_columns(sc: psycopg.Connection, tc: psycopg.Connection, spec: TableSpec) -> list[str]:
    """The shared column list, or SchemaDriftError naming every difference."""
    src, tgt = table_columns(sc, spec.table), table_columns(tc, spec.table)
    problems = tf.compare_columns(src, tgt)
    if problems:
        raise SchemaDriftError(
            f"{spec.table}: schema drift between source and target: " + "; ".join(problems)
        )
    return [c for c, _ in src]


def lock_table(conn: psycopg.Connection, spec: TableSpec) -> None:
    """One sync of a table at a time (two overlapping runs could otherwise interleave merges)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"gfx_sync:{spec.table}",))


def copy_between(
    src: psycopg.Connection,
    query: sql.Composable,
    dst: psycopg.Connection,
    table: sql.Composable,
    columns: Sequence[str],
) -> tuple[int, int]:
    """Stream ``query`` on ``src`` into ``table`` on ``dst`` with binary COPY.

    Returns:
        (rows, bytes) copied.
    """
    out_stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    in_stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        table, tf.ident_list(columns)
    )
    nbytes = 0
    buffer = bytearray()
    with src.cursor() as scur, dst.cursor() as dcur:
        with scur.copy(out_stmt) as cout, dcur.copy(in_stmt) as cin:
            # The server sends one CopyData message per row; writing them in ~1 MiB batches keeps
            # the per-row Python cost to one append (the bytes are still never decoded).
            for block in cout:
                buffer += block
                if len(buffer) >= COPY_BUFFER_BYTES:
                    cin.write(bytes(buffer))
                    nbytes += len(buffer)
                    buffer.clear()
            if buffer:
                cin.write(bytes(buffer))
                nbytes += len(buffer)
        rows = dcur.rowcount
    return max(rows, 0), nbytes


def create_stage(
    conn: psycopg.Connection, spec: TableSpec, columns: Sequence[str], name: str
) -> sql.Composable:
    """A TEMP copy of the table's shape with no constraints (bad rows land and are found in SQL)."""
    stg = sql.Identifier(name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stg))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            stg, tf.ident_list(columns), table_ident(spec)
        )
    )
    return stg


def read_horizon(conn: psycopg.Connection) -> tuple[datetime, datetime]:
    """(the server's clock, the read horizon) of ``conn``'s database.

    The horizon is the start of the oldest transaction open there (other than ours), or the
    clock if none is older. Run it in its own transaction just BEFORE the read snapshot: any
    transaction whose rows the snapshot cannot see was either open here (horizon <= its start)
    or began later (its start > the clock here >= horizon).
    """
    with conn.transaction():
        row = conn.execute(
            "SELECT clock_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND xact_start IS NOT NULL)"
        ).fetchone()
    assert row is not None
    clock, oldest = row
    return clock, clock if oldest is None else min(clock, oldest)


def max_timestamp(conn: psycopg.Connection, spec: TableSpec) -> datetime | None:
    """The table's ``max(updated_at)`` on ``conn``'s side, over the stamps a watermark can hold.

    ``infinity`` / ``-infinity`` and stamps outside Python's years 2..9998 (BC dates) are left
    out: they cannot order a row against a watermark (and cannot be loaded into ``datetime``),
    so one such row must neither fail every run nor carry the watermark past every later row.
    The incremental read picks such rows up by itself (see ``incremental_predicate``).
    """
    row = conn.execute(
        sql.SQL("SELECT max({ts}) FILTER (WHERE {ts} >= {lo} AND {ts} < {hi}) FROM {t}").format(
            ts=sql.Identifier(TIMESTAMP_COLUMN),
            lo=sql.Literal(WATERMARK_RANGE[0]),
            hi=sql.Literal(WATERMARK_RANGE[1]),
            t=table_ident(spec),
        )
    ).fetchone()
    return row[0] if row else None


def incremental_predicate(lo: datetime | None) -> sql.Composable:
    """Rows an incremental read takes: stamped at or after ``lo``, and the ``-infinity``-stamped
    ones (no watermark can be below them; ``infinity`` is above every watermark anyway). Both
    arms can use the index on ``updated_at``."""
    if lo is None:
        return sql.SQL("true")
    return sql.SQL("({ts} >= {lo} OR {ts} = '-infinity')").format(
        ts=sql.Identifier(TIMESTAMP_COLUMN), lo=sql.Literal(lo)
    )


def stored_watermark(tc: psycopg.Connection, spec: TableSpec) -> datetime | None:
    row = tc.execute(
        "SELECT watermark FROM public.sync_status WHERE source = %s AND entity_type = %s",
        (SOURCE_SYSTEM, spec.table),
    ).fetchone()
    return row[0] if row else None


def cursor_time(conn: psycopg.Connection, name: str) -> datetime | None:
    value = get_cursor(conn, DOMAIN, name)
    return datetime.fromisoformat(value) if value else None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def cdc_owner(sc: psycopg.Connection, tc: psycopg.Connection, spec: TableSpec) -> str | None:
    """The slot of the CDC stream that owns ``spec.table``, or None.

    A stream owns a table once its initial snapshot committed on the target (a
    ``platform.gfx_cdc_state`` row with ``snapshot_completed_at``), its slot exists on the source
    and is not lost, and its publication carries the table. From then on only the stream writes
    the table; the batch path and the reconciliation verify it (a write from a source snapshot
    could resurrect a row the stream deleted after that snapshot). Runs on ``tc``'s open
    transaction and in a short transaction of its own on ``sc``.
    """
    streams = tc.execute(
        "SELECT slot_name, publication FROM platform.gfx_cdc_state"
        " WHERE snapshot_completed_at IS NOT NULL ORDER BY slot_name"
    ).fetchall()
    if not streams:
        return None
    with sc.transaction():
        for slot, publication in streams:
            row = sc.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s"
                " AND database = current_database() AND wal_status IS DISTINCT FROM 'lost')"
                " AND EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = %s"
                " AND schemaname = 'public' AND tablename = %s)",
                (slot, publication, spec.table),
            ).fetchone()
            if row and row[0]:
                return str(slot)
    return None


def fence_cdc(tc: psycopg.Connection, slot: str) -> None:
    """Hold the stream's applier until ``tc``'s transaction ends: it locks the same state row
    first in every apply. Take it BEFORE the source snapshot, so the snapshot is at least as new
    as everything the stream applied, and every later change is applied after this commit."""
    tc.execute("SELECT 1 FROM platform.gfx_cdc_state WHERE slot_name = %s FOR UPDATE", (slot,))
