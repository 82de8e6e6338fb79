"""Assets: Notion and Drive (sources) -> Supabase tables and the Storage bucket.

The assets orchestrate; ``customers``, ``records``, ``images`` and ``pipeline`` do the work.
Every run writes one ``consultation_sync_logs`` row and reports rows read/written/skipped/
quarantined, Notion requests and duration as metadata.
"""

import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from consultation_backup.conflicts import effective_strategy
from consultation_backup.constants import (
    BUCKET,
    CUSTOMERS_KEY,
    CUSTOMERS_TABLE,
    DRIVE_IMAGES_KEY,
    GROUP,
    IMAGES_KEY,
    NOTION_CONSULTATIONS_KEY,
    NOTION_CUSTOMERS_KEY,
    NOTION_POOL,
    OWNERS,
    RECORDS_KEY,
    RECORDS_TABLE,
)
from consultation_backup.customers import sync_customers
from consultation_backup.images import sync_images
from consultation_backup.models import (
    CustomersResult,
    FullSyncResult,
    ImagesResult,
    ReconcileResult,
    RecordsResult,
    SyncTotals,
)
from consultation_backup.partitions import consultation_daily
from consultation_backup.pipeline import sync_records_and_images
from consultation_backup.reconcile import reconcile
from consultation_backup.records import sync_records
from consultation_backup.schemas import CUSTOMER_SCHEMA, RECORD_SCHEMA
from consultation_backup.settings import ConsultationSettings
from consultation_backup.sources import observe_drive_folder, observe_notion_database
from consultation_backup.sync_log import sync_log
from resources.dagster_helpers import run_metadata
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

# -- sources ------------------------------------------------------------------------------------
notion_customers = dg.AssetSpec(
    NOTION_CUSTOMERS_KEY,
    group_name=GROUP,
    kinds={"notion"},
    owners=OWNERS,
    description="Notion database 고객 (customers): the primary system. One page per customer.",
)
notion_consultations = dg.AssetSpec(
    NOTION_CONSULTATIONS_KEY,
    group_name=GROUP,
    kinds={"notion"},
    owners=OWNERS,
    description="Notion database 상담일지 (consultations), related to 고객; images are Google "
    "Drive links.",
)
drive_images = dg.AssetSpec(
    DRIVE_IMAGES_KEY,
    group_name=GROUP,
    kinds={"googledrive"},
    owners=OWNERS,
    description="Google Drive folder MSPharmHQ/<customer id>/ holding consultation images "
    "(<상담ID>_<n>.jpg).",
)
SOURCE_SPECS = [notion_customers, notion_consultations, drive_images]
SOURCE_KEYS = [spec.key for spec in SOURCE_SPECS]


@dg.multi_observable_source_asset(
    name="consultation_sources",
    specs=SOURCE_SPECS,
    can_subset=True,
    required_resource_keys={"notion", "google_drive", "supabase_db", "consultation_settings"},
    description="Observes the two Notion databases (last edit from one sorted query, schema "
    "version, counts from Supabase) and the Drive folder (its modifiedTime, backed-up images): "
    "a few requests, never a full scan.",
)
def consultation_sources(context: dg.AssetExecutionContext) -> Iterator[dg.ObserveResult]:
    res = context.resources
    settings: ConsultationSettings = res.consultation_settings
    databases = {
        NOTION_CUSTOMERS_KEY: (settings.customers_database_id, CUSTOMERS_TABLE, "notion/customers"),
        NOTION_CONSULTATIONS_KEY: (
            settings.consultations_database_id,
            RECORDS_TABLE,
            "notion/consultations",
        ),
    }
    for key, (database_id, table, source) in databases.items():
        if key in context.selected_asset_keys:
            seen = observe_notion_database(res.notion, res.supabase_db, database_id, table, source)
            yield dg.ObserveResult(
                asset_key=key,
                data_version=dg.DataVersion(seen.data_version),
                metadata=seen.metadata(),
            )
    if DRIVE_IMAGES_KEY in context.selected_asset_keys:
        drive = observe_drive_folder(res.google_drive, res.supabase_db)
        yield dg.ObserveResult(
            asset_key=DRIVE_IMAGES_KEY,
            data_version=dg.DataVersion(drive.data_version),
            metadata=drive.metadata(),
        )


SOURCES = [consultation_sources]


class SyncConfig(dg.Config):
    """Run config shared by the Notion-backed assets."""

    conflict_strategy: Literal["", "notion_wins", "latest_wins", "manual"] = Field(
        default="",
        description="empty (default): the table's strategy stored in Supabase "
        "(consultation_sync_settings; notion_wins when none is stored); or an explicit "
        "override for this run: notion_wins, latest_wins (the newer edit wins) or manual "
        "(both versions kept for resolution)",
    )


class RecordsConfig(SyncConfig):
    edited_since: str = Field(
        default="",
        description="ISO time: read only pages edited since then (the sensor "
        "sets it); empty = the whole window, with the trash sweep",
    )


class CustomersConfig(SyncConfig):
    full_refresh: bool = Field(
        default=False, description="read every page instead of edits since the watermark"
    )
    reconcile: bool = Field(
        default=False,
        description="also soft-delete rows whose page is gone from Notion and "
        "recompute consultation_count (the nightly schedule sets it)",
    )
    max_soft_delete_share: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="mass-deletion guard of the reconcile: stop, changing nothing, when more "
        "than this share of the live rows (and at least 20) would be soft-deleted",
    )


def _window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's partition range as [start, end) dates in Asia/Seoul."""
    tw = context.partition_time_window
    return tw.start.date(), tw.end.date()


def _failures_preview(totals: SyncTotals) -> str:
    return (
        "\n".join(f"- {f.business_id or f.item_id}: {f.reason}" for f in totals.failures[:20])
        or "none"
    )


def _customers_metadata(
    started: float, rows: int, result: CustomersResult, rec: ReconcileResult | None
) -> dict[str, Any]:
    totals = result.totals
    return run_metadata(
        started,
        **{"dagster/row_count": rows},
        rows_read=totals.total,
        rows_written=totals.synced,
        rows_skipped_unchanged=totals.skipped,
        rows_quarantined=totals.failed,
        conflicts=totals.conflicts,
        mode=result.mode,
        watermark=str(result.watermark),
        notion_requests=result.notion_requests + (rec.notion_requests if rec else 0),
        quarantined=dg.MetadataValue.md(_failures_preview(totals)),
        **({f"reconcile_{k}": v for k, v in rec.as_dict().items()} if rec else {}),
    )


# The daily runs land every night; a missed night warns, two missed nights fail.
DAILY_BACKUP_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=13)
)


@dg.asset(
    key=CUSTOMERS_KEY,
    deps=[NOTION_CUSTOMERS_KEY],
    group_name=GROUP,
    kinds={"notion", "postgres", "supabase"},
    owners=OWNERS,
    pool=NOTION_POOL,
    freshness_policy=DAILY_BACKUP_FRESHNESS,
    metadata={
        "dagster/table_name": f"public.{CUSTOMERS_TABLE}",
        "dagster/column_schema": CUSTOMER_SCHEMA,
    },
    description="Backup of the Notion customers database: incremental on last_edited_time "
    "(watermark in platform.sync_cursors, re-read with a 2-minute overlap), idempotent upsert on "
    "notion_page_id; bad pages quarantined. With `reconcile`, pages gone from Notion become "
    "is_deleted and consultation_count is recomputed.",
)
def consultation_customers(
    context: dg.AssetExecutionContext,
    config: CustomersConfig,
    notion: NotionResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    details = {
        "run_id": context.run.run_id,
        "strategy": config.conflict_strategy,
        "full_refresh": config.full_refresh,
    }
    settings = consultation_settings
    strategy = effective_strategy(supabase_db, CUSTOMERS_TABLE, config.conflict_strategy)
    details["strategy"] = strategy
    with sync_log(supabase_db, "full" if config.reconcile else "customers", details) as log:
        result = sync_customers(
            notion,
            supabase_db,
            settings.customers_database_id,
            full=config.full_refresh,
            strategy=strategy,
            run_id=context.run.run_id,
        )
        rec = None
        if config.reconcile:
            rec = reconcile(
                notion,
                supabase_db,
                settings.customers_database_id,
                settings.consultations_database_id,
                max_soft_delete_share=config.max_soft_delete_share,
                run_id=context.run.run_id,
            )
        log.finish(FullSyncResult(result, rec) if rec else result)
    if result.totals.failures:
        context.log.warning(
            f"{result.totals.failed} customer page(s) quarantined:\n"
            f"{_failures_preview(result.totals)}"
        )
    rows = supabase_db.fetch_value(
        f"SELECT count(*) FROM public.{CUSTOMERS_TABLE} WHERE NOT is_deleted"
    )
    return dg.MaterializeResult(metadata=_customers_metadata(started, rows, result, rec))


RECORDS_SPEC = dg.AssetSpec(
    RECORDS_KEY,
    deps=[NOTION_CONSULTATIONS_KEY, CUSTOMERS_KEY],
    group_name=GROUP,
    kinds={"notion", "postgres", "supabase"},
    owners=OWNERS,
    skippable=True,
    freshness_policy=DAILY_BACKUP_FRESHNESS,
    metadata={
        "dagster/table_name": f"public.{RECORDS_TABLE}",
        "dagster/column_schema": RECORD_SCHEMA,
    },
    description="Backup of the Notion consultations database, partitioned by 상담일자 "
    "(Asia/Seoul). A range backfill is one run and one windowed Notion query (split past the "
    "10,000-result cap). Rows of the window whose page was trashed or deleted become "
    "is_deleted.",
)
IMAGES_SPEC = dg.AssetSpec(
    IMAGES_KEY,
    deps=[RECORDS_KEY, DRIVE_IMAGES_KEY],
    group_name=GROUP,
    kinds={"googledrive", "supabase"},
    owners=OWNERS,
    skippable=True,
    freshness_policy=DAILY_BACKUP_FRESHNESS,
    metadata={
        "bucket": BUCKET,
        "layout": "customers/{customer_id}/consultations/{consultation_id}/image_{n}.{ext}",
    },
    description="Consultation images copied from Google Drive to the private bucket "
    "consultation-images (10 MB, JPEG/PNG/WebP): type sniffed from the bytes, unchanged images "
    "(same md5 / modifiedTime) not downloaded again; records get supabase_image_urls. Without "
    "SUPABASE_SERVICE_ROLE_KEY the Storage part is skipped with the reason in the metadata.",
)
PARITY_CHECK = dg.AssetCheckSpec(
    "notion_parity",
    asset=RECORDS_KEY,
    description="Every consultation Notion returned for the window is backed up "
    "(or quarantined), and nothing else is live in the window.",
)


def _records_events(
    started: float, result: RecordsResult, partitions: int
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    totals = result.totals
    yield dg.MaterializeResult(
        asset_key=RECORDS_KEY,
        metadata=run_metadata(
            started,
            **{"dagster/row_count": len(result.supabase_ids)},
            window=result.window,
            partitions=partitions,
            mode="edited_since" if result.edited_since else "window",
            rows_read=totals.total,
            rows_written=totals.synced,
            rows_skipped_unchanged=totals.skipped,
            rows_quarantined=totals.failed,
            conflicts=totals.conflicts,
            soft_deleted=result.soft_deleted,
            notion_requests=result.notion_requests,
            cap_splits=result.cap_splits,
            quarantined=dg.MetadataValue.md(_failures_preview(totals)),
        ),
    )
    missing, extra = sorted(result.missing_in_supabase), sorted(result.extra_in_supabase)
    yield dg.AssetCheckResult(
        asset_key=RECORDS_KEY,
        check_name=PARITY_CHECK.name,
        passed=not missing and not extra,
        metadata={
            "notion_pages": len(result.notion_ids),
            "supabase_live_rows": len(result.supabase_ids),
            "quarantined": totals.failed,
            "missing_in_supabase": len(missing),
            "extra_in_supabase": len(extra),
            "sample": ", ".join((missing + extra)[:10]) or "none",
        },
    )


def _images_event(started: float, images: ImagesResult) -> dg.MaterializeResult:
    totals = images.totals
    return dg.MaterializeResult(
        asset_key=IMAGES_KEY,
        metadata=run_metadata(
            started,
            window=images.window,
            images_seen=totals.total,
            images_uploaded=totals.synced,
            images_unchanged=totals.skipped,
            images_quarantined=totals.failed,
            bytes_uploaded=images.bytes_uploaded,
            skipped_reason=images.skipped_reason or "none",
            quarantined=dg.MetadataValue.md(_failures_preview(totals)),
        ),
    )


def _sync_window(
    context: dg.AssetExecutionContext,
    config: RecordsConfig,
    resources: tuple[
        NotionResource, GoogleDriveResource, SupabaseStorageResource, PostgresResource
    ],
    database_id: str,
) -> tuple[RecordsResult | None, ImagesResult | None]:
    """Run what the selection asks for, each part with its own sync log."""
    notion, drive, storage, db = resources
    start, end = _window(context)
    run_id, since = context.run.run_id, config.edited_since or None
    window = f"{start}...{end}"
    want_records = RECORDS_KEY in context.selected_asset_keys
    want_images = IMAGES_KEY in context.selected_asset_keys
    records: RecordsResult | None = None
    images: ImagesResult | None = None
    strategy = effective_strategy(db, RECORDS_TABLE, config.conflict_strategy)
    with ExitStack() as stack:
        rdetails = {"run_id": run_id, "strategy": strategy, "window": window}
        rlog = (
            stack.enter_context(sync_log(db, "consultations", rdetails)) if want_records else None
        )
        ilog = (
            stack.enter_context(sync_log(db, "images", {"run_id": run_id, "window": window}))
            if want_images
            else None
        )
        options: dict[str, Any] = {
            "strategy": strategy,
            "run_id": run_id,
            "edited_since": since,
        }
        if want_records and want_images:
            both = sync_records_and_images(
                notion, drive, storage, db, database_id, start, end, **options
            )
            records, images = both.records, both.images
        elif want_records:
            records = sync_records(notion, db, database_id, start, end, **options)
        if rlog is not None and records is not None:
            rlog.finish(records)
        if want_images and images is None:
            images = sync_images(drive, storage, db, start, end, run_id=run_id, notion=notion)
        if ilog is not None and images is not None:
            reason = images.skipped_reason
            ilog.finish(images, status="partial" if reason else None, message=reason)
    return records, images


@dg.multi_asset(
    name="consultation_records_and_images",
    specs=[RECORDS_SPEC, IMAGES_SPEC],
    partitions_def=consultation_daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=NOTION_POOL,
    can_subset=True,
    check_specs=[PARITY_CHECK],
)
def consultation_records_and_images(
    context: dg.AssetExecutionContext,
    config: RecordsConfig,
    notion: NotionResource,
    google_drive: GoogleDriveResource,
    supabase_storage: SupabaseStorageResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Records and images of a 상담일자 range in one step, so Drive copies overlap the
    rate-limited Notion reads (each committed batch's images are copied while the next batch
    is read)."""
    started = time.perf_counter()
    records, images = _sync_window(
        context,
        config,
        (notion, google_drive, supabase_storage, supabase_db),
        consultation_settings.consultations_database_id,
    )
    if records is not None:
        if records.totals.failures:
            context.log.warning(
                f"{records.totals.failed} consultation page(s) quarantined:\n"
                f"{_failures_preview(records.totals)}"
            )
        yield from _records_events(started, records, len(context.partition_keys))
    if images is not None:
        if images.skipped_reason:
            context.log.warning(f"Storage skipped: {images.skipped_reason}")
        if images.totals.failures:
            context.log.warning(
                f"{images.totals.failed} image(s) quarantined:\n{_failures_preview(images.totals)}"
            )
        yield _images_event(started, images)


ASSETS = [consultation_customers, consultation_records_and_images]
