"""The spec's own sync path for one table: the entry point assets and the command line call.

The operations live in their own modules: :mod:`gfx_sync.batch` (source-owned tables),
:mod:`gfx_sync.two_way` (tables written on both sides), :mod:`gfx_sync.reconcile` (the hash
reconciliation a batch run may add); :mod:`gfx_sync.run_log` records every run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gfx_sync.batch import DEFAULT_OVERLAP, batch_sync
from gfx_sync.models import SyncResult
from gfx_sync.pause import SkippedSync, paused_reason
from gfx_sync.reconcile import DEFAULT_CHUNK_ROWS
from gfx_sync.run_log import RECONCILING
from gfx_sync.specs import TableSpec
from gfx_sync.two_way import two_way_sync
from resources.postgres import PostgresResource


def sync_table(
    source: PostgresResource,
    target: PostgresResource,
    spec: TableSpec,
    *,
    window: tuple[datetime, datetime] | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    reconcile: bool = False,
    full_hash: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    run_id: str | None = None,
    partition_key: str | None = None,
    mark_failure: bool = True,
) -> SyncResult | SkippedSync:
    """Two-way/reverse tables exchange changes (a window, reconciliation and partition do not
    apply to them); the rest copy from the source (see :func:`gfx_sync.batch.batch_sync`).
    A paused table (``gfx-sync pause``) is skipped, with the pause's reason."""
    reason = paused_reason(target, spec.table)
    if reason is not None:
        return SkippedSync(spec.table, reason)
    if spec.is_two_way:
        return two_way_sync(
            source, target, spec, overlap=overlap, run_id=run_id, mark_failure=mark_failure
        )
    token = RECONCILING.set(reconcile)
    try:
        return batch_sync(
            source,
            target,
            spec,
            window=window,
            overlap=overlap,
            reconcile=reconcile,
            full_hash=full_hash,
            chunk_rows=chunk_rows,
            run_id=run_id,
            partition_key=partition_key,
            mark_failure=mark_failure,
        )
    finally:
        RECONCILING.reset(token)
