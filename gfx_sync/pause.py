"""Pause and resume (seed 003 §7.1 step 1): stop syncing some tables without losing changes.

``pause`` marks the tables ``paused`` in ``sync_status`` (who, why, when); the batch,
reconciliation and two-way paths (:func:`gfx_sync.sync.sync_table`, the listener) skip them with
that reason; the CDC stream keeps reading its slot, so the source's WAL is not held back, and
parks the paused tables' changes in ``platform.gfx_sync_parked_changes``. ``resume`` applies the
parked changes in their commit order, in one transaction with the status change, and marks the
tables ``pending`` so the next run (or the auto-recovery) brings them up to date.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gfx_sync.specs import SOURCE_SYSTEM, SPECS_BY_TABLE, mark_sync_transaction
from resources.postgres import PostgresResource


class UnknownTable(ValueError):
    """A table name that is not in the spec list."""


@dataclass(frozen=True)
class SkippedSync:
    """A run that did nothing because its table is paused."""

    table: str
    reason: str
    status: str = "skipped"

    def metadata(self) -> dict[str, Any]:
        return {"skipped": f"paused: {self.reason}"}


@dataclass(frozen=True)
class ResumeReport:
    tables: tuple[str, ...]
    parked_applied: int


def _tables(tables: Iterable[str] | None) -> list[str]:
    names = list(tables or SPECS_BY_TABLE)
    unknown = sorted(set(names) - set(SPECS_BY_TABLE))
    if unknown:
        raise UnknownTable(f"unknown table(s): {', '.join(unknown)}")
    return names


def pause_tables(
    target: PostgresResource,
    tables: Iterable[str] | None = None,
    *,
    reason: str = "paused by operator",
    by: str | None = None,
) -> list[str]:
    """Mark ``tables`` (default: all) paused; returns the tables newly paused."""
    names = _tables(tables)
    rows = target.fetch_all(
        "UPDATE public.sync_status SET status = 'paused', paused_at = now(), paused_by = %s,"
        " paused_reason = %s WHERE source = %s AND entity_type = ANY(%s)"
        " AND status <> 'paused' RETURNING entity_type",
        (by or getpass.getuser(), reason, SOURCE_SYSTEM, names),
    )
    return sorted(r["entity_type"] for r in rows)


def paused_reason(conn: PostgresResource | psycopg.Connection, table: str) -> str | None:
    """Why ``table`` is paused, or None when it is not."""
    query = (
        "SELECT coalesce(paused_reason, 'paused') FROM public.sync_status"
        " WHERE source = %s AND entity_type = %s AND status = 'paused'"
    )
    if isinstance(conn, PostgresResource):
        value = conn.fetch_value(query, (SOURCE_SYSTEM, table))
    else:
        row = conn.execute(query, (SOURCE_SYSTEM, table)).fetchone()
        value = row[0] if row else None
    return None if value is None else str(value)


def paused_tables(conn: psycopg.Connection) -> frozenset[str]:
    """Qualified names (``public.<table>``) of the paused tables (what the CDC applier parks)."""
    rows = conn.execute(
        "SELECT 'public.' || entity_type FROM public.sync_status"
        " WHERE source = %s AND status = 'paused'",
        (SOURCE_SYSTEM,),
    ).fetchall()
    return frozenset(r[0] for r in rows)


def park_change(
    conn: psycopg.Connection,
    table: str,
    kind: str,
    new: dict[str, object] | None,
    old_key: dict[str, object] | None,
    commit_lsn: str | None,
    commit_time: Any,
    unchanged: object,
) -> None:
    """Keep one CDC change of a paused table for :func:`resume_tables` (values as text;
    ``unchanged`` marks TOAST columns the change did not carry, which are left out)."""
    row = None if new is None else {k: v for k, v in new.items() if v is not unchanged}
    conn.execute(
        "INSERT INTO platform.gfx_sync_parked_changes"
        " (table_name, kind, new_row, old_key, commit_lsn, commit_time)"
        " VALUES (%s, %s, %s, %s, %s::pg_lsn, %s)",
        (
            table,
            kind,
            None if row is None else Jsonb(row),
            None if old_key is None else Jsonb(old_key),
            commit_lsn,
            commit_time,
        ),
    )


def park_paused(
    conn: psycopg.Connection, changes: list[tuple[Any, Any]], unchanged: object
) -> list[tuple[Any, Any]]:
    """The CDC applier's hook: park the row changes of paused tables (in the batch's target
    transaction, so the slot position and the parked rows commit together) and return the rest.

    ``changes`` are ``(RowChange, SourceTransaction)`` pairs; truncates are never parked.
    """
    paused = paused_tables(conn)
    if not paused:
        return changes
    keep = []
    for change, tx in changes:
        if change.kind == "truncate" or change.qualified_name not in paused:
            keep.append((change, tx))
            continue
        lsn = tx.commit_lsn or 0
        park_change(
            conn,
            change.table,
            change.kind,
            change.new,
            change.old_key,
            f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}",
            tx.commit_time,
            unchanged,
        )
    return keep


def _apply_parked(conn: psycopg.Connection, table: str) -> int:
    spec = SPECS_BY_TABLE[table]
    key = spec.key
    ident = sql.Identifier("public", table)
    rows = conn.execute(
        "DELETE FROM platform.gfx_sync_parked_changes WHERE table_name = %s"
        " RETURNING seq, kind, new_row, old_key",
        (table,),
    ).fetchall()
    for _seq, kind, new_row, old_key in sorted(rows, key=lambda r: r[0]):
        where_vals = old_key or {key: (new_row or {}).get(key)}
        if kind == "delete" or (old_key and new_row and old_key.get(key) != new_row.get(key)):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = %s").format(ident, sql.Identifier(key)),
                (str(where_vals[key]),),
            )
            if kind == "delete":
                continue
        cols = list(new_row or {})
        nonkey = [c for c in cols if c != key] or [key]
        # text values bound untyped: the target parses them by the column types (as CDC does)
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({k}) DO UPDATE SET {sets}"
            ).format(
                t=ident,
                cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
                vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                k=sql.Identifier(key),
                sets=sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in nonkey
                ),
            ),
            [None if v is None else str(v) for v in (new_row or {}).values()],
        )
    return len(rows)


def resume_tables(target: PostgresResource, tables: Sequence[str] | None = None) -> ResumeReport:
    """Apply each table's parked changes in order and mark it pending, in one transaction."""
    names = _tables(tables)
    applied = 0
    with target.transaction() as conn:
        mark_sync_transaction(conn)
        resumed = [
            r[0]
            for r in conn.execute(
                "SELECT entity_type FROM public.sync_status WHERE source = %s"
                " AND entity_type = ANY(%s) AND status = 'paused' ORDER BY entity_type FOR UPDATE",
                (SOURCE_SYSTEM, names),
            ).fetchall()
        ]
        for table in resumed:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"gfx_sync:{table}",))
            applied += _apply_parked(conn, table)
        conn.execute("SELECT set_config('gfx_sync.applying', 'off', true)")
        conn.execute(
            "UPDATE public.sync_status SET status = 'pending', next_sync_at = now(),"
            " paused_at = NULL, paused_by = NULL, paused_reason = NULL"
            " WHERE source = %s AND entity_type = ANY(%s)",
            (SOURCE_SYSTEM, resumed),
        )
    return ResumeReport(tuple(resumed), applied)
