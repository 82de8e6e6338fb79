"""Jobs: the nightly reconcile (customers asset with ``reconcile``), the daily partition job,
and the restore job (Supabase -> Notion, dry run unless told otherwise)."""

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from consultation_backup import restore
from consultation_backup.assets import SOURCE_KEYS, CustomersConfig, consultation_customers
from consultation_backup.compare import compare_and_repair
from consultation_backup.conflicts import effective_strategy
from consultation_backup.constants import (
    CUSTOMERS_KEY,
    CUSTOMERS_TABLE,
    IMAGES_KEY,
    NOTION_POOL,
    RECORDS_KEY,
    RECORDS_TABLE,
)
from consultation_backup.edits import EditsResult, sync_edits
from consultation_backup.partitions import consultation_daily
from consultation_backup.settings import ConsultationSettings
from consultation_backup.sync_log import sync_log
from consultation_backup.transform import SEOUL
from resources.dagster_helpers import build_migrations_job, run_metadata
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

migrations_job = build_migrations_job("consultation_backup", ["consultation_backup"])

reconcile_job = dg.define_asset_job(
    "consultation_reconcile_job",
    selection=dg.AssetSelection.assets(CUSTOMERS_KEY),
    config=dg.RunConfig(
        ops={consultation_customers.op.name: CustomersConfig(reconcile=True, full_refresh=False)}
    ),
    description="Nightly: incremental customer sync, then full ID reconciliation against Notion "
    "(trashed or deleted pages become is_deleted, never hard-deleted) and consultation_count "
    "recomputed.",
    tags={"domain": "consultation_backup"},
)

observe_sources_job = dg.define_asset_job(
    "consultation_observe_sources_job",
    selection=dg.AssetSelection.assets(*SOURCE_KEYS),
    tags={"domain": "consultation_backup"},
    description="Observe the Notion databases and the Drive folder (last edit, schema version, "
    "counts from Supabase): a few requests.",
)

customers_job = dg.define_asset_job(
    "consultation_customers_job",
    selection=dg.AssetSelection.assets(CUSTOMERS_KEY),
    tags={"domain": "consultation_backup"},
    description="Incremental customer backup (what the Notion edits sensor requests).",
)

records_job = dg.define_asset_job(
    "consultation_records_job",
    selection=dg.AssetSelection.assets(RECORDS_KEY, IMAGES_KEY),
    partitions_def=consultation_daily,
    tags={"domain": "consultation_backup"},
    description="Back up one 상담일자 partition of consultations and their images.",
)


class EditsConfig(dg.Config):
    """What the edits sensor saw in one tick."""

    customers: bool = Field(
        default=True, description="run the incremental customer sync (customer pages edited)"
    )
    consultations_since: str = Field(
        default="",
        description="ISO time: back up every consultation edited since then, whatever its "
        "상담일자 (empty = none)",
    )
    trashed_page_ids: list[str] = Field(
        default_factory=list, description="consultation pages trashed since the last tick"
    )


# sensor-launched runs retry: Notion or Drive hiccups past the client's own retries, a lost
# connection; the pass is idempotent (upserts, unchanged rows skipped)
EDITS_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _edits_events(
    context: dg.OpExecutionContext, result: EditsResult, started: float
) -> Iterator[dg.AssetMaterialization]:
    """One materialization of the customers table (if synced) and one of the records and the
    images per 상담일자 partition the pass touched."""
    if result.customers is not None:
        totals = result.customers.totals
        yield dg.AssetMaterialization(
            asset_key=CUSTOMERS_KEY,
            metadata=run_metadata(
                started,
                trigger="edits",
                rows_read=totals.total,
                rows_written=totals.synced,
                rows_quarantined=totals.failed,
                soft_deleted=result.customers.soft_deleted,
            ),
        )
    valid = set(consultation_daily.get_partition_keys(dynamic_partitions_store=context.instance))
    keys = [d.isoformat() for d in result.touched_days]
    outside = [k for k in keys if k not in valid]
    if outside:
        context.log.warning(
            f"{len(outside)} edited consultation day(s) outside the partition range were backed "
            f"up (no partition to report): {', '.join(outside[:10])}"
        )
    records, images = result.records, result.images
    for key in (k for k in keys if k in valid):
        yield dg.AssetMaterialization(
            asset_key=RECORDS_KEY,
            partition=key,
            metadata={
                "trigger": "edits",
                "run_rows_written": records.totals.synced if records else 0,
            },
        )
        if images is not None and not images.skipped_reason:
            yield dg.AssetMaterialization(
                asset_key=IMAGES_KEY,
                partition=key,
                metadata={"trigger": "edits", "run_images_uploaded": images.totals.synced},
            )


@dg.op(
    name="apply_notion_edits",
    pool=NOTION_POOL,
    retry_policy=EDITS_RETRY_POLICY,
    description="Back up everything edited in Notion since the sensor's cursor in one pass: the "
    "customer sync, every edited consultation whatever its 상담일자 (one query), trashed "
    "consultations soft-deleted, the edited consultations' images. Reports a materialization "
    "per 상담일자 partition touched.",
)
def apply_notion_edits(
    context: dg.OpExecutionContext,
    config: EditsConfig,
    notion: NotionResource,
    google_drive: GoogleDriveResource,
    supabase_storage: SupabaseStorageResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> Iterator[dg.AssetMaterialization | dg.Output[dict[str, Any]]]:
    started = time.perf_counter()
    db, run_id = supabase_db, context.run.run_id
    record_strategy = effective_strategy(db, RECORDS_TABLE)
    details = {"run_id": run_id, "trigger": "edits", "strategy": record_strategy}
    with sync_log(db, "consultations", {**details, "since": config.consultations_since}) as log:
        result = sync_edits(
            notion,
            google_drive,
            supabase_storage,
            db,
            customers_database_id=consultation_settings.customers_database_id,
            consultations_database_id=consultation_settings.consultations_database_id,
            consultations_since=config.consultations_since or None,
            trashed_page_ids=config.trashed_page_ids,
            sync_customer_edits=config.customers,
            customer_strategy=effective_strategy(db, CUSTOMERS_TABLE),
            record_strategy=record_strategy,
            run_id=run_id,
        )
        log.finish(result.records)
    yield from _edits_events(context, result, started)
    summary = {
        "touched_partitions": [d.isoformat() for d in result.touched_days],
        "consultations_read": result.records.totals.total if result.records else 0,
        "consultations_trashed": result.trashed,
        "customers_read": result.customers.totals.total if result.customers else 0,
    }
    yield dg.Output(summary, metadata={**summary, "touched_partitions": len(result.touched_days)})


@dg.job(
    name="consultation_edits_job",
    tags={"domain": "consultation_backup", "dagster/max_retries": "2"},
    description="What the Notion edits sensor launches once per tick: every edited page in one "
    "run, whatever its 상담일자 (unpartitioned; reports each partition it touched).",
)
def edits_job() -> None:
    apply_notion_edits()


@dg.op(
    name="compare_notion_with_backup",
    pool=NOTION_POOL,
    retry_policy=EDITS_RETRY_POLICY,
    description="Weekly: every page id and last_edited_time of both Notion databases against "
    "the backup; pages missing or newer in Notion are backed up (whatever the sensor missed), "
    "rows gone from Notion are counted for the nightly reconcile.",
)
def compare_notion_with_backup(
    context: dg.OpExecutionContext,
    notion: NotionResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> Iterator[dg.AssetMaterialization | dg.Output[dict[str, Any]]]:
    started = time.perf_counter()
    db, run_id = supabase_db, context.run.run_id
    with sync_log(db, "full", {"run_id": run_id, "trigger": "weekly_compare"}) as log:
        result = compare_and_repair(
            notion,
            db,
            customers_database_id=consultation_settings.customers_database_id,
            consultations_database_id=consultation_settings.consultations_database_id,
            customer_strategy=effective_strategy(db, CUSTOMERS_TABLE),
            record_strategy=effective_strategy(db, RECORDS_TABLE),
            run_id=run_id,
        )
        log.finish(result.records_sync)
    for comparison in (result.customers, result.consultations):
        if comparison.missed:
            context.log.warning(
                f"{comparison.table}: {len(comparison.missed)} page(s) the sensor missed were "
                f"backed up: {', '.join(comparison.missed[:10])}"
            )
    if result.customers_sync is not None:
        yield dg.AssetMaterialization(
            asset_key=CUSTOMERS_KEY, metadata=run_metadata(started, trigger="weekly_compare")
        )
    valid = set(consultation_daily.get_partition_keys(dynamic_partitions_store=context.instance))
    for day in result.touched_days:
        if day.isoformat() in valid:
            yield dg.AssetMaterialization(
                asset_key=RECORDS_KEY,
                partition=day.isoformat(),
                metadata={"trigger": "weekly_compare"},
            )
    summary = {
        "customers": result.customers.as_dict(),
        "consultations": result.consultations.as_dict(),
    }
    flat = {f"{t}_{k}": v for t, d in summary.items() for k, v in d.items()}
    yield dg.Output(summary, metadata=flat)


@dg.job(
    name="consultation_weekly_compare_job",
    tags={"domain": "consultation_backup"},
    description="Weekly full comparison of every Notion page id and last_edited_time with the "
    "backup; backs up whatever the edits sensor missed.",
)
def weekly_compare_job() -> None:
    compare_notion_with_backup()


class RestoreConfig(dg.Config):
    dry_run: bool = Field(default=True, description="only report what would change (the default)")
    as_of: str = Field(
        default="",
        description="ISO time to restore the backup's state of (no offset = Asia/Seoul); "
        "empty = now",
    )
    overwrite: bool = Field(
        default=False,
        description="also overwrite pages that exist but differ (their state is kept as a "
        "version first)",
    )
    target_customers_database_id: str = Field(
        default="",
        description="empty = NOTION_CUSTOMERS_DATABASE_ID (restore in place); another database "
        "only gets the missing pages created",
    )
    target_consultations_database_id: str = Field(
        default="", description="empty = NOTION_CONSULTATIONS_DATABASE_ID"
    )
    customer_ids: list[str] = Field(
        default_factory=list, description="these 5-digit customer ids with their consultations"
    )
    consultation_ids: list[str] = Field(
        default_factory=list, description="single consultation pages (e.g. 00001_002)"
    )
    page_ids: list[str] = Field(
        default_factory=list, description="single pages by their (current or former) Notion id"
    )


def _as_of(text: str) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=SEOUL)


@dg.op(
    pool=NOTION_POOL,
    description="Restore Notion to the backup's state as of a time (history versions): pages "
    "in Notion's trash restored from it, gone pages recreated and re-pointed; dry run unless "
    "told otherwise.",
)
def restore_to_notion(
    context: dg.OpExecutionContext,
    config: RestoreConfig,
    notion: NotionResource,
    supabase_db: PostgresResource,
    supabase_storage: SupabaseStorageResource,
    consultation_settings: ConsultationSettings,
) -> dg.Output:
    in_place = not (config.target_customers_database_id or config.target_consultations_database_id)
    report = restore.restore(
        notion,
        supabase_db,
        customers_database_id=config.target_customers_database_id
        or consultation_settings.customers_database_id,
        consultations_database_id=config.target_consultations_database_id
        or consultation_settings.consultations_database_id,
        as_of=_as_of(config.as_of),
        dry_run=config.dry_run,
        overwrite=config.overwrite,
        customer_ids=config.customer_ids or None,
        consultation_ids=config.consultation_ids or None,
        page_ids=config.page_ids or None,
        relink=in_place,
        run_id=context.run.run_id,
        log=context.log.info,
        storage=supabase_storage,
    )
    return dg.Output(
        report.as_dict(),
        metadata={k: v for k, v in report.as_dict().items() if not isinstance(v, list)},
    )


@dg.job(
    name="consultation_restore_job",
    # Never retried blindly by the instance's run retries (it writes into Notion).
    tags={"domain": "consultation_backup", "dagster/max_retries": "0"},
    description="Restore Notion from the Supabase backup as of a time (dry run by default).",
)
def restore_job():
    restore_to_notion()


JOBS = [
    migrations_job,
    customers_job,
    reconcile_job,
    records_job,
    edits_job,
    weekly_compare_job,
    observe_sources_job,
    restore_job,
]
