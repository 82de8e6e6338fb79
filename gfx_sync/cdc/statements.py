"""SQL the applier runs, built once per table shape (the applier caches the text)."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from gfx_sync.cdc.target import TargetTable


def _equals(columns: Sequence[str], sep: str) -> sql.Composed:
    return sql.SQL(sep).join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns)


def delete_sql(tt: TargetTable) -> sql.Composed:
    """DELETE one row by its key."""
    return sql.SQL("DELETE FROM {} WHERE {}").format(tt.ident, _equals(tt.key, " AND "))


def update_sql(tt: TargetTable, setcols: Sequence[str]) -> sql.Composed:
    """UPDATE the given columns of one row by its (old) key."""
    return sql.SQL("UPDATE {} SET {} WHERE {}").format(
        tt.ident, _equals(setcols, ", "), _equals(tt.key, " AND ")
    )


def multi_delete_sql(tt: TargetTable) -> sql.Composed:
    """DELETE every row whose single-column key is in a text array parameter."""
    return sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::text[]::{}[])").format(
        tt.ident, sql.Identifier(tt.key[0]), sql.SQL(tt.columns[tt.key[0]])
    )


def upsert_sql(tt: TargetTable, cols: Sequence[str], nrows: int) -> sql.Composed:
    """INSERT ``nrows`` whole rows, updating the non-key columns on a key conflict."""
    nonkey = [c for c in cols if c not in tt.key]
    conflict = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in nonkey
            )
        )
        if nonkey
        else sql.SQL("DO NOTHING")
    )
    row_sql = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    return sql.SQL("INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) {}").format(
        tt.ident,
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join([row_sql] * nrows),
        sql.SQL(", ").join(map(sql.Identifier, tt.key)),
        conflict,
    )


def numbered_upsert_text(one_row_text: str, ncols: int, nrows: int) -> str:
    """The one-row upsert's text rewritten for ``nrows`` rows with ``$n`` placeholders.

    For a RawCursor with ``prepare=True``: psycopg does not cache the conversion of long query
    texts, and the server plans each shape once.
    """
    head, _, tail = one_row_text.partition(" VALUES ")
    tail = tail[tail.index(")") + 1 :]
    rows = ", ".join(
        "(" + ", ".join(f"${r * ncols + c + 1}" for c in range(ncols)) + ")" for r in range(nrows)
    )
    return f"{head} VALUES {rows}{tail}"


def stage_sql(stage: str, ncols: int) -> sql.Composed:
    """A session-local staging table of ``ncols`` text columns ``c0..cN`` (the wire's text)."""
    return sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({})").format(
        sql.Identifier(stage),
        sql.SQL(", ").join(
            sql.SQL("{} text").format(sql.Identifier(f"c{i}")) for i in range(ncols)
        ),
    )


def merge_from_stage_sql(tt: TargetTable, cols: Sequence[str], stage: str) -> sql.Composed:
    """One set-based upsert of the staged rows: each text value is cast to its column's type
    (the type's input function, as an untyped parameter would be), key conflicts update the
    non-key columns. The staged keys must be distinct (the caller keeps the last image)."""
    nonkey = [c for c in cols if c not in tt.key]
    conflict = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in nonkey
            )
        )
        if nonkey
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
        tt.ident,
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Identifier(f"c{i}"), sql.SQL(tt.columns[c]))
            for i, c in enumerate(cols)
        ),
        sql.Identifier(stage),
        sql.SQL(", ").join(map(sql.Identifier, tt.key)),
        conflict,
    )
