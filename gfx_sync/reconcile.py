"""The chunked key-range hash reconciliation: hard deletes and drift a watermark cannot see."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import psycopg
from psycopg import sql

from gfx_sync import transform as tf
from gfx_sync.merge import quarantine_and_merge
from gfx_sync.models import MergeOutcome, ReconcileOutcome
from gfx_sync.specs import TIMESTAMP_COLUMN, TableSpec
from gfx_sync.staging import (
    copy_between,
    create_stage,
    key_array,
    max_timestamp,
    table_ident,
)
from resources.postgres import PostgresResource

DEFAULT_CHUNK_ROWS = 50_000


def _chunk_hashes(
    conn: psycopg.Connection, spec: TableSpec, columns: Sequence[str], chunk_rows: int, full: bool
) -> dict[int, tuple[int, int]]:
    q = sql.SQL("SELECT {b} AS b, count(*), coalesce(bit_xor({h}), 0) FROM {t} GROUP BY 1").format(
        b=tf.bucket_expr(spec, chunk_rows),
        h=tf.row_hash_expr(spec.key, columns, full),
        t=table_ident(spec),
    )
    return {int(b): (int(c), int(h)) for b, c, h in conn.execute(q).fetchall()}


def _row_hashes(
    conn: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    chunk_rows: int,
    buckets: Sequence[int],
    full: bool,
) -> dict[str, int]:
    q = sql.SQL("SELECT {k}::text, {h} FROM {t} WHERE {p}").format(
        k=sql.Identifier(spec.key),
        h=tf.row_hash_expr(spec.key, columns, full),
        t=table_ident(spec),
        p=tf.chunk_predicate(spec, chunk_rows, buckets),
    )
    return {k: int(h) for k, h in conn.execute(q).fetchall()}


def reconcile_table(
    source: PostgresResource,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    run_id: str | None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    full: bool = False,
    verify_only: bool = False,
) -> ReconcileOutcome:
    """Find hard deletes and drift by key range: per-chunk (count, xor of row hashes) on both
    sides, so equal chunks cost one hash; only differing chunks are compared row by row (keys
    and hashes only), then missing/different rows are re-copied and rows gone from the source
    deleted.

    A key is deleted only when a source snapshot taken after the target scan still lacks it,
    and only if its row did not change since the scan began, so a concurrent CDC insert is
    never removed. With ``verify_only`` (a table a CDC stream owns) nothing is written: only
    the chunk comparison is reported.

    Returns:
        The chunk counts and what was re-copied or deleted (in ``tc``'s open transaction).
    """
    tc.execute("SET LOCAL TimeZone = 'UTC'")
    target_read_at = max_timestamp(tc, spec)
    with source.connection() as sc, sc.transaction():
        sc.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        sc.execute("SET LOCAL TimeZone = 'UTC'")
        # Both scans run at once (two servers in production, two cores here); deletes are
        # re-verified against a fresh source snapshot below, so the scans need no ordering.
        with ThreadPoolExecutor(max_workers=1) as pool:
            tgt_future = pool.submit(_chunk_hashes, tc, spec, columns, chunk_rows, full)
            src = _chunk_hashes(sc, spec, columns, chunk_rows, full)
            tgt = tgt_future.result()
        bad = tf.diff_chunks(src, tgt)
        compared = ReconcileOutcome(
            chunks_compared=len(set(src) | set(tgt)), chunks_different=len(bad)
        )
        if not bad or verify_only:
            return compared
        to_copy, to_delete = tf.diff_rows(
            _row_hashes(sc, spec, columns, chunk_rows, bad, full),
            _row_hashes(tc, spec, columns, chunk_rows, bad, full),
        )
        rows = nbytes = 0
        merged = MergeOutcome()
        if to_copy:
            stg = create_stage(tc, spec, columns, "gfx_reconcile_stage")
            query = sql.SQL("SELECT {} FROM {} WHERE {}::text = ANY({})").format(
                tf.ident_list(columns),
                table_ident(spec),
                sql.Identifier(spec.key),
                sql.Literal(to_copy),
            )
            rows, nbytes = copy_between(sc, query, tc, stg, columns)
            merged = quarantine_and_merge(tc, spec, columns, stg, tf.changed_guard(columns), run_id)
    gone = _still_missing(source, spec, to_delete) if to_delete else []
    deleted = _delete_unchanged(tc, spec, gone, target_read_at) if gone else 0
    return ReconcileOutcome(
        chunks_compared=compared.chunks_compared,
        chunks_different=compared.chunks_different,
        rows_read=rows,
        bytes_copied=nbytes,
        copied=len(to_copy),
        deleted_keys=len(gone),
        merge=merged + MergeOutcome(deleted=deleted),
    )


def _still_missing(source: PostgresResource, spec: TableSpec, keys: list[str]) -> list[str]:
    """The keys a source snapshot taken after the target scan still lacks: anything the target
    scan saw had committed on the source before that snapshot."""
    with source.connection() as sc2, sc2.transaction():
        still = {
            r[0]
            for r in sc2.execute(
                sql.SQL("SELECT {k}::text FROM {t} WHERE {k} = ANY({arr})").format(
                    k=sql.Identifier(spec.key), t=table_ident(spec), arr=key_array(spec)
                ),
                (keys,),
            ).fetchall()
        }
    return [k for k in keys if k not in still]


def _delete_unchanged(
    tc: psycopg.Connection, spec: TableSpec, keys: list[str], target_read_at: datetime | None
) -> int:
    return tc.execute(
        # a row stamped +/-infinity cannot be compared with the scan time: it is deleted
        # (the fresh source snapshot lacks its key), as a finite row from before the scan is
        sql.SQL(
            "DELETE FROM {t} WHERE {k}::text = ANY(%s) AND ({ts} <= %s OR NOT isfinite({ts}))"
        ).format(
            t=table_ident(spec), k=sql.Identifier(spec.key), ts=sql.Identifier(TIMESTAMP_COLUMN)
        ),
        (keys, target_read_at),
    ).rowcount
