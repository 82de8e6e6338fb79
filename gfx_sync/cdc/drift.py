"""Schema drift between a source Relation message and the target table, and its repair."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from gfx_sync.cdc.errors import SchemaDriftError
from gfx_sync.cdc.models import Column, Relation
from gfx_sync.cdc.slot import pin_session
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


def apply_drift(
    conn: psycopg.Connection, tt: TargetTable, drift: Drift, source_dsn: str | None = None
) -> None:
    """The 'apply' policy: add the new columns and change the types on the target.

    A Relation message carries a column's name and type only, so an added column's default and
    NOT NULL are read from the source's catalog: the column is added with the same default,
    the rows the target already holds get the source's values (a volatile default gave each
    source row its own), and NOT NULL is set last. Anything that cannot be repeated on the
    target (no source to ask, a default using a function the target lacks, a row the source no
    longer has with no value) raises :class:`SchemaDriftError`: the stream stops rather than
    diverge.
    """
    if drift.added and source_dsn is None:
        raise SchemaDriftError(
            f"{drift.message}; policy 'apply' needs the source to copy the new columns' default"
            " and NOT NULL, and this applier has none: stopping"
        )
    for c in drift.added:
        if c.type_name.startswith("oid:"):
            raise SchemaDriftError(
                f"{drift.message}; cannot add {c.name}: its type (oid {c.type_oid}) is unknown here"
            )
    if drift.added:
        assert source_dsn is not None
        _add_columns(conn, tt, drift, source_dsn)
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


def _add_columns(conn: psycopg.Connection, tt: TargetTable, drift: Drift, source_dsn: str) -> None:
    names = [c.name for c in drift.added]
    with psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-drift") as src:
        src.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        pin_session(src)
        shape = {
            name: (notnull, default)
            for name, notnull, default in src.execute(
                """SELECT a.attname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
                     FROM pg_attribute a
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                    WHERE a.attrelid = %s::regclass AND a.attname = ANY(%s)
                      AND NOT a.attisdropped""",
                (f'"{tt.schema}"."{tt.name}"', names),
            )
        }
        try:
            with conn.transaction():
                for c in drift.added:
                    _notnull, default = shape.get(c.name, (False, None))
                    conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{}").format(
                            tt.ident,
                            sql.Identifier(c.name),
                            sql.SQL(c.type_name),
                            sql.SQL(f" DEFAULT {default}") if default else sql.SQL(""),
                        )
                    )
                _backfill(src, conn, tt, names)
                for c in drift.added:
                    if shape.get(c.name, (False, None))[0]:
                        conn.execute(
                            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(
                                tt.ident, sql.Identifier(c.name)
                            )
                        )
        except psycopg.Error as exc:
            raise SchemaDriftError(
                f"{drift.message}; policy 'apply' could not repeat it on the target"
                f" ({type(exc).__name__}: {str(exc).strip().splitlines()[0]}): stopping. Add a"
                " gfx_sync migration for the target, then restart the stream"
            ) from exc
        src.execute("COMMIT")


def _backfill(
    src: psycopg.Connection, conn: psycopg.Connection, tt: TargetTable, names: list[str]
) -> None:
    """The source's values of the new columns for the rows the target holds (COPY into a temp
    table, one UPDATE); later changes of those rows arrive by the stream as usual."""
    cols = list(tt.key) + names
    collist = sql.SQL(", ").join(map(sql.Identifier, cols))
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE gfx_cdc_backfill ON COMMIT DROP AS SELECT {} FROM {} LIMIT 0"
        ).format(collist, tt.ident)
    )
    with (
        src.cursor().copy(
            sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(collist, tt.ident)
        ) as out,
        conn.cursor().copy(sql.SQL("COPY gfx_cdc_backfill ({}) FROM STDIN").format(collist)) as inp,
    ):
        for block in out:
            inp.write(block)
    conn.execute(
        sql.SQL("UPDATE {} AS t SET {} FROM gfx_cdc_backfill AS b WHERE {}").format(
            tt.ident,
            sql.SQL(", ").join(sql.SQL("{0} = b.{0}").format(sql.Identifier(n)) for n in names),
            sql.SQL(" AND ").join(
                sql.SQL("t.{0} = b.{0}").format(sql.Identifier(k)) for k in tt.key
            ),
        )
    )
    conn.execute("DROP TABLE gfx_cdc_backfill")
