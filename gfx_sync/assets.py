"""One factory turns the spec list into assets: ``[supabase, public, <table>]`` downstream of the
source spec ``[external_pg, public, <table>]``, daily UTC partitions on ``updated_at``, a
single-run backfill policy, freshness policies (batch 30 min, CDC 5 min) and retries.

For the CDC tables these assets are the batch/reconciliation path; the CDC sensor and worker
(``gfx_sync.cdc``) report materializations for the same keys.
"""

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

import dagster as dg

from gfx_sync.constants import GROUP, OWNERS, POOL, source_key, target_key
from gfx_sync.pause import SkippedSync
from gfx_sync.reconcile import DEFAULT_CHUNK_ROWS
from gfx_sync.schema import declared_columns
from gfx_sync.specs import SPECS, TableSpec
from gfx_sync.sync import sync_table
from resources.postgres import PostgresResource

SyncMode = Literal["auto", "window", "incremental"]
RETRIES = 2  # Dagster retries a failed table twice (3 s, then 6 s) before the run fails
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC", end_offset=1)


class GfxSyncConfig(dg.Config):
    """How a run syncs.

    ``mode``: ``incremental`` (from the watermark; the schedules set it), ``window`` (re-sync
    exactly the selected days of ``updated_at``), or ``auto`` (default): the current day's single
    partition means "bring everything up to date" (incremental, a full copy into an empty table),
    any past day or a range (``dg launch --partition-range``, UI backfills) re-syncs its window.
    """

    mode: SyncMode = "auto"
    reconcile: bool = False
    full_hash: bool = False
    overlap_minutes: float = 10.0
    chunk_rows: int = DEFAULT_CHUNK_ROWS


def _column_schema(table: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=c, type=t) for c, t in declared_columns("supabase")[table]]
    )


def source_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            source_key(s.table),
            group_name=GROUP,
            kinds={"postgres"},
            owners=OWNERS,
            description=f"External production PostgreSQL table public.{s.table}: {s.description}",
            metadata={
                "dagster/table_name": f"external_pg.public.{s.table}",
                "dagster/column_schema": _column_schema(s.table),
                "method": s.method,
                "winner": s.winner,
            },
        )
        for s in SPECS
    ]


def build_table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """The Supabase copy of one spec row (or, for two-way tables, the exchange between both
    sides)."""

    @dg.asset(
        key=target_key(spec.table),
        deps=[source_key(spec.table)],
        partitions_def=PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"postgres", "supabase"},
        owners=OWNERS,
        description=f"{spec.description} Method: {spec.method}, direction: {spec.direction}, "
        f"conflict winner: {spec.winner}. Partitioned by day of updated_at (UTC).",
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=spec.freshness),
        retry_policy=dg.RetryPolicy(max_retries=RETRIES, delay=3, backoff=dg.Backoff.EXPONENTIAL),
        pool=POOL,
        output_required=False,  # a paused table is skipped: no materialization
        metadata={
            "dagster/table_name": f"supabase.public.{spec.table}",
            "dagster/column_schema": _column_schema(spec.table),
            "method": spec.method,
            "direction": spec.direction,
            "winner": spec.winner,
            "key": spec.key,
        },
        # The latest partition is an incremental sync of everything new (a full copy the first
        # time), so `platform materialize-all` needs only that one, not 700 partitions' events.
        tags={"gfx_sync/method": spec.method, "platform/materialize-all": "latest-partition"},
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: GfxSyncConfig,
        supabase_db: PostgresResource,
        gfx_source_db: PostgresResource,
    ) -> Iterator[dg.MaterializeResult]:
        started = time.perf_counter()
        window = None
        partition_key = None
        keys = context.partition_keys if context.has_partition_key_range else []
        latest_only = keys == [PARTITIONS.get_last_partition_key()]
        if keys and (config.mode == "window" or (config.mode == "auto" and not latest_only)):
            tw = context.partition_time_window
            window = (tw.start, tw.end)
            partition_key = keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"
        if spec.is_two_way and window:
            context.log.info(
                "two-way table: exchanging changes by watermark (the window does not apply)"
            )
        final_attempt = context.retry_number >= RETRIES
        res = sync_table(
            gfx_source_db,
            supabase_db,
            spec,
            window=window,
            mark_failure=final_attempt,
            overlap=timedelta(minutes=config.overlap_minutes),
            reconcile=config.reconcile,
            full_hash=config.full_hash,
            chunk_rows=config.chunk_rows,
            run_id=context.run.run_id,
            partition_key=partition_key,
        )
        if isinstance(res, SkippedSync):
            context.log.warning(f"{spec.table} is paused ({res.reason}): skipped, not materialized")
            return
        if res.quarantined:
            context.log.warning(
                f"{spec.table}: {res.quarantined} row(s) quarantined (see sync_log /"
                f" data_quarantine)"
            )
        rows = supabase_db.fetch_value(f"SELECT count(*) FROM public.{spec.table}")
        yield dg.MaterializeResult(
            metadata={
                **res.metadata(),
                "mode": "window" if window else "incremental",
                "dagster/row_count": int(rows),
                "run_duration_s": round(time.perf_counter() - started, 3),
            }
        )

    return _asset


TABLE_ASSETS = [build_table_asset(s) for s in SPECS]
SOURCE_SPECS = source_specs()
