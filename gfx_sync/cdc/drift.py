"""Schema drift between a source Relation message and the target table, and its repair."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from gfx_sync.cdc.errors import SchemaDriftError
from gfx_sync.cdc.models import Column, Relation
from gfx_sync.cdc.target import TargetTable


@dataclass(frozen=True)
class Drift:
    """Source columns the target lacks, and columns whose type differs."""

    added: tuple[Column, ...]
    changed: tuple[Column, ...]
    message: str


def relation_drift(rel: Relation, tt: TargetTable) -> Drift | None:
    """The drift of ``rel`` against ``tt``, or None when the target already matches."""
    added = tuple(c for c in rel.columns if c.name not in tt.columns)
    changed = tuple(
        c
        for c in rel.columns
        if c.name in tt.columns
        and c.type_name
        and not c.type_name.startswith("oid:")
        and c.type_name != tt.columns[c.name]
    )
    if not (added or changed):
        return None
    what = [f"added column {c.name} {c.type_name}" for c in added] + [
        f"column {c.name} changed type {tt.columns[c.name]} -> {c.type_name}" for c in changed
    ]
    return Drift(added, changed, f"schema drift on {rel.qualified_name}: " + "; ".join(what))


def refuse(drift: Drift) -> SchemaDriftError:
    """The error the 'stop' policy raises, saying what to do."""
    return SchemaDriftError(
        drift.message
        + ". Policy is 'stop': nothing of this transaction was applied and the slot did"
        " not advance. Add a gfx_sync migration for the target (or run the worker with"
        " --drift-policy apply), then restart the stream"
    )


def apply_drift(conn: psycopg.Connection, tt: TargetTable, drift: Drift) -> None:
    """The 'apply' policy: add the new columns and change the types on the target."""
    for c in drift.added:
        if c.type_name.startswith("oid:"):
            raise SchemaDriftError(
                f"{drift.message}; cannot add {c.name}: its type (oid {c.type_oid}) is unknown here"
            )
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                tt.ident, sql.Identifier(c.name), sql.SQL(c.type_name)
            )
        )
    for c in drift.changed:
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                tt.ident,
                sql.Identifier(c.name),
                sql.SQL(c.type_name),
                sql.Identifier(c.name),
                sql.SQL(c.type_name),
            )
        )
