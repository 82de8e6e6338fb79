"""The guarded merge of a staging table into a live table, with bad rows quarantined.

CHECK/NOT NULL violations are found up front in SQL; anything else the merge rejects (a unique
index, a bad value) is isolated by bisecting the staged keys under savepoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gfx_sync import transform as tf
from gfx_sync.models import MergeOutcome
from gfx_sync.specs import SOURCE_SYSTEM, TIMESTAMP_COLUMN, TableSpec
from gfx_sync.staging import DOMAIN, key_array, table_ident
from resources.state import quarantine

MAX_QUARANTINE_LOG_ROWS = 500
_REJECTED = (psycopg.errors.IntegrityError, psycopg.errors.DataError)


def _constraint_cases(tc: psycopg.Connection, spec: TableSpec) -> list[tuple[sql.Composable, str]]:
    """(condition on a staged row, reason) for every target CHECK and NOT NULL constraint."""
    regclass = f"public.{spec.table}"
    cases: list[tuple[sql.Composable, str]] = []
    for conname, condef in tc.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'c' ORDER BY conname",
        (regclass,),
    ).fetchall():
        expr = tf.check_expression(condef)
        if expr:
            cases.append(
                (
                    sql.SQL("({}) IS FALSE").format(sql.SQL(expr)),
                    f"violates target constraint {conname}: {condef}",
                )
            )
    for (col,) in tc.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND attnotnull AND NOT attisdropped ORDER BY attnum",
        (regclass,),
    ).fetchall():
        cases.append(
            (
                sql.SQL("{} IS NULL").format(sql.Identifier(col)),
                f"null value in column {col} (NOT NULL on target)",
            )
        )
    return cases


def constraint_violations(
    tc: psycopg.Connection, spec: TableSpec, stg: sql.Composable
) -> list[tuple[str, str]]:
    """Staged rows that break a target CHECK or NOT NULL constraint: (key, reason)."""
    cases = _constraint_cases(tc, spec)
    if not cases:
        return []
    # one scan of the staging table, whatever the number of constraints
    reason = (
        sql.SQL("CASE ")
        + sql.SQL(" ").join(
            sql.SQL("WHEN {} THEN {}").format(cond, sql.Literal(text)) for cond, text in cases
        )
        + sql.SQL(" END")
    )
    rows = tc.execute(
        sql.SQL("SELECT {k}::text, {r} FROM {s} WHERE {any}").format(
            k=sql.Identifier(spec.key),
            r=reason,
            s=stg,
            any=sql.SQL(" OR ").join(sql.SQL("({})").format(c) for c, _ in cases),
        )
    ).fetchall()
    return sorted((k, r) for k, r in rows)


def _drop_staged(
    tc: psycopg.Connection, spec: TableSpec, stg: sql.Composable, keys: list[str]
) -> None:
    tc.execute(
        sql.SQL("DELETE FROM {s} WHERE {k}::text = ANY(%s)").format(
            s=stg, k=sql.Identifier(spec.key)
        ),
        (keys,),
    )


def quarantine_rows(
    tc: psycopg.Connection,
    spec: TableSpec,
    stg: sql.Composable,
    bad: Sequence[tuple[str, str]],
    run_id: str | None,
    direction: str,
) -> int:
    """Record ``bad`` rows in data_quarantine and sync_log, and drop them from the stage."""
    keys = [k for k, _ in bad]
    payloads: dict[str, Any] = dict(
        tc.execute(
            sql.SQL("SELECT {k}::text, to_jsonb(s) FROM {s} AS s WHERE {k}::text = ANY(%s)").format(
                k=sql.Identifier(spec.key), s=stg
            ),
            (keys,),
        ).fetchall()
    )
    for i, (key, reason) in enumerate(bad):
        quarantine(
            tc,
            domain=DOMAIN,
            source=f"{SOURCE_SYSTEM}/{spec.table}",
            item_id=key,
            reason=reason,
            payload=payloads.get(key),
            run_id=run_id,
        )
        if i < MAX_QUARANTINE_LOG_ROWS:
            tc.execute(
                "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation,"
                " direction, status, records_failed, error_message, details, finished_at)"
                " VALUES (%s, %s, %s, %s, 'quarantine', %s, 'failed', 1, %s, %s, now())",
                (
                    run_id,
                    SOURCE_SYSTEM,
                    spec.table,
                    spec.method,
                    direction,
                    reason,
                    Jsonb({"key": key, "reason": reason}),
                ),
            )
    _drop_staged(tc, spec, stg, keys)
    return len(bad)


def merge_sql(
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    keys_filter: bool,
    exclude_tombstones: bool,
) -> sql.Composed:
    """``INSERT … ON CONFLICT DO UPDATE … WHERE guard`` from the stage; counts (inserted,
    updated)."""
    key = sql.Identifier(spec.key)
    where: list[sql.Composable] = []
    if keys_filter:
        where.append(sql.SQL("s.{} = ANY({})").format(key, key_array(spec)))
    if exclude_tombstones:
        where.append(
            sql.SQL(
                "NOT EXISTS (SELECT 1 FROM platform.gfx_sync_tombstones tb"
                " WHERE tb.table_name = {t} AND tb.row_key = s.{k}::text AND tb.deleted_at >="
                " s.{ts})"
            ).format(t=sql.Literal(spec.table), k=key, ts=sql.Identifier(TIMESTAMP_COLUMN))
        )
    where_sql = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in columns if c != spec.key
    )
    return sql.SQL(
        "WITH m AS (INSERT INTO {tbl} AS t ({cols}) SELECT {scols} FROM {stg} AS s{where}"
        " ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {guard}"
        " RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM m"
    ).format(
        tbl=table_ident(spec),
        cols=tf.ident_list(columns),
        scols=tf.ident_list(columns, "s"),
        stg=stg,
        where=where_sql,
        key=key,
        updates=updates,
        guard=guard,
    )


def _counts(cur: psycopg.Cursor) -> tuple[int, int]:
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def quarantine_and_merge(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    run_id: str | None,
    *,
    direction: str = "external_to_supabase",
    log_conn: psycopg.Connection | None = None,
    exclude_tombstones: bool = False,
) -> MergeOutcome:
    """Merge the staged rows into the table on ``tc``; rows that break a constraint are
    quarantined (on ``log_conn``, the Supabase connection) and the rest land.

    Returns:
        What landed and what was quarantined or rejected.
    """
    log_conn = log_conn or tc
    quarantined = 0
    bad = constraint_violations(tc, spec, stg)
    if bad:
        if log_conn is tc:
            quarantined += quarantine_rows(tc, spec, stg, bad, run_id, direction)
        else:
            # merging into the source: its constraints are the source's own, nothing to log
            _drop_staged(tc, spec, stg, [k for k, _ in bad])
            quarantined += len(bad)
    try:
        with tc.transaction():
            ins, upd = _counts(
                tc.execute(merge_sql(spec, columns, stg, guard, False, exclude_tombstones))
            )
        return MergeOutcome(inserted=ins, updated=upd, quarantined=quarantined)
    except _REJECTED:
        pass
    done = _merge_bisecting(tc, spec, columns, stg, guard, exclude_tombstones)
    merged, failed = done.merge, done.failed
    if len(failed) > 1:
        group = _merge_as_group(
            tc, spec, columns, stg, guard, [k for k, _ in failed], exclude_tombstones
        )
        if group is not None:
            merged, failed = merged + group, []
    outcome = merged + MergeOutcome(quarantined=quarantined)
    if not failed:
        return outcome
    if log_conn is tc:
        n = quarantine_rows(tc, spec, stg, failed, run_id, direction)
        return outcome + MergeOutcome(quarantined=n)
    return outcome + MergeOutcome(quarantined=len(failed), rejected=tuple(failed[:50]))


@dataclass(frozen=True)
class _Bisected:
    merge: MergeOutcome
    failed: list[tuple[str, str]]


def _merge_bisecting(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    exclude_tombstones: bool,
) -> _Bisected:
    """Merge the stage in halves under savepoints until each rejected row stands alone."""
    keys = [
        r[0]
        for r in tc.execute(
            sql.SQL("SELECT {} FROM {}").format(sql.Identifier(spec.key), stg)
        ).fetchall()
    ]
    stmt = merge_sql(spec, columns, stg, guard, True, exclude_tombstones)
    pending = [keys]
    merged = MergeOutcome()
    failed: list[tuple[str, str]] = []
    while pending:
        chunk = pending.pop()
        try:
            with tc.transaction():
                ins, upd = _counts(tc.execute(stmt, (chunk,)))
            merged = merged + MergeOutcome(inserted=ins, updated=upd)
        except _REJECTED as exc:
            if len(chunk) == 1:
                failed.append((str(chunk[0]), f"rejected by target: {str(exc).splitlines()[0]}"))
            else:
                mid = len(chunk) // 2
                pending += [chunk[:mid], chunk[mid:]]
    return _Bisected(merged, failed)


def _merge_as_group(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    keys: Sequence[str],
    exclude_tombstones: bool,
) -> MergeOutcome | None:
    """Rows each rejected alone may still form a valid state together: two rows swapping a
    unique code in one source transaction clash with each other's OLD values row by row (a
    non-deferrable unique index is checked per row). Under a savepoint, the stale target
    versions of these keys (those the guard would overwrite) are removed first, then the group
    is merged; all or nothing. None if the group is rejected too.
    """
    key = sql.Identifier(spec.key)
    try:
        with tc.transaction():
            # the guard names the incoming row EXCLUDED, as in ON CONFLICT
            removed = tc.execute(
                sql.SQL(
                    "DELETE FROM {t} AS t USING {s} AS EXCLUDED WHERE t.{k} = EXCLUDED.{k}"
                    " AND EXCLUDED.{k}::text = ANY(%s) AND {guard}"
                ).format(t=table_ident(spec), s=stg, k=key, guard=guard),
                (list(keys),),
            ).rowcount
            ins, upd = _counts(
                tc.execute(
                    merge_sql(spec, columns, stg, guard, True, exclude_tombstones), (list(keys),)
                )
            )
    except _REJECTED:
        return None
    return MergeOutcome(inserted=ins - removed, updated=upd + removed, merged_as_group=len(keys))
