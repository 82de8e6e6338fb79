"""Assets: Notion and Drive (sources) -> Supabase tables and the Storage bucket.

The assets orchestrate; ``consultation_backup.sync`` does the work. Every run writes one
``consultation_sync_logs`` row and reports rows read/written/skipped/quarantined, Notion
requests and duration as metadata.
"""

import time
from datetime import date, timedelta

import dagster as dg
from pydantic import Field

from consultation_backup import sync
from consultation_backup.constants import (
    BUCKET,
    CONFLICT_STRATEGIES,
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
from consultation_backup.partitions import consultation_daily
from consultation_backup.settings import ConsultationSettings
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
    description="Notion database 상담일지 (consultations), related to 고객; images are Google Drive links.",
)
drive_images = dg.AssetSpec(
    DRIVE_IMAGES_KEY,
    group_name=GROUP,
    kinds={"googledrive"},
    owners=OWNERS,
    description="Google Drive folder MSPharmHQ/<customer id>/ holding consultation images (<상담ID>_<n>.jpg).",
)
SOURCES = [notion_customers, notion_consultations, drive_images]


def _schema(*cols: tuple[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in cols])


CUSTOMER_SCHEMA = _schema(
    ("id", "uuid"),
    ("notion_page_id", "text"),
    ("customer_id", "text"),
    ("name", "text"),
    ("phone", "text"),
    ("gender", "text"),
    ("birth_date", "date"),
    ("estimated_age", "integer"),
    ("address", "text"),
    ("special_note", "text"),
    ("face_embedding", "jsonb"),
    ("google_drive_folder_id", "text"),
    ("consultation_count", "integer"),
    ("is_deleted", "boolean"),
    ("synced_at", "timestamptz"),
    ("sync_status", "text"),
    ("notion_updated_at", "timestamptz"),
)
RECORD_SCHEMA = _schema(
    ("id", "uuid"),
    ("notion_page_id", "text"),
    ("consultation_id", "text"),
    ("customer_id", "uuid"),
    ("customer_notion_id", "text"),
    ("consultation_date", "date"),
    ("symptoms", "text"),
    ("patient_condition", "text"),
    ("tongue_analysis", "text"),
    ("special_note", "text"),
    ("prescription", "text"),
    ("result", "text"),
    ("image_count", "integer"),
    ("google_drive_urls", "jsonb"),
    ("supabase_image_urls", "jsonb"),
    ("is_deleted", "boolean"),
    ("notion_updated_at", "timestamptz"),
)


class SyncConfig(dg.Config):
    """Run config shared by the Notion-backed assets."""

    conflict_strategy: str = Field(
        default="notion_wins",
        description="notion_wins (default) | latest_wins | manual (seed 000 §2.2)",
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


def _strategy(value: str) -> str:
    if value not in CONFLICT_STRATEGIES:
        raise dg.Failure(
            f"conflict_strategy must be one of {', '.join(CONFLICT_STRATEGIES)}, not {value!r}"
        )
    return value


def _window(context) -> tuple[date, date]:
    """The run's partition range as [start, end) dates in Asia/Seoul."""
    tw = context.partition_time_window
    return tw.start.date(), tw.end.date()


def _failures_preview(outcome) -> str:
    return (
        "\n".join(f"- {f.business_id or f.item_id}: {f.reason}" for f in outcome.failures[:20])
        or "none"
    )


@dg.asset(
    key=CUSTOMERS_KEY,
    deps=[NOTION_CUSTOMERS_KEY],
    group_name=GROUP,
    kinds={"notion", "postgres", "supabase"},
    owners=OWNERS,
    pool=NOTION_POOL,
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=26), warn_window=timedelta(hours=13)
    ),
    metadata={
        "dagster/table_name": f"public.{CUSTOMERS_TABLE}",
        "dagster/column_schema": CUSTOMER_SCHEMA,
    },
    description="Backup of the Notion customers database: incremental on last_edited_time (watermark in "
    "platform.sync_cursors, re-read with a 2-minute overlap), idempotent upsert on notion_page_id; "
    "bad pages quarantined. With `reconcile`, pages gone from Notion become is_deleted and "
    "consultation_count is recomputed.",
)
def consultation_customers(
    context: dg.AssetExecutionContext,
    config: CustomersConfig,
    notion: NotionResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    strategy = _strategy(config.conflict_strategy)
    log = sync.SyncLog(
        supabase_db,
        "full" if config.reconcile else "customers",
        {"run_id": context.run.run_id, "strategy": strategy, "full_refresh": config.full_refresh},
    )
    try:
        outcome, stats = sync.sync_customers(
            notion,
            supabase_db,
            consultation_settings.customers_database_id,
            full=config.full_refresh,
            strategy=strategy,
            run_id=context.run.run_id,
        )
        if config.reconcile:
            rec = sync.reconcile(
                notion,
                supabase_db,
                consultation_settings.customers_database_id,
                consultation_settings.consultations_database_id,
            )
            outcome.extra["reconcile"] = rec.extra
    except Exception as exc:
        log.finish(None, exc)
        raise
    log.finish(outcome)
    if outcome.failures:
        context.log.warning(
            f"{outcome.failed} customer page(s) quarantined:\n{_failures_preview(outcome)}"
        )
    rows = supabase_db.fetch_value(
        f"SELECT count(*) FROM public.{CUSTOMERS_TABLE} WHERE NOT is_deleted"
    )
    return dg.MaterializeResult(
        metadata=run_metadata(
            started,
            **{"dagster/row_count": rows},
            rows_read=outcome.total,
            rows_written=outcome.synced,
            rows_skipped_unchanged=outcome.skipped,
            rows_quarantined=outcome.failed,
            conflicts=outcome.conflicts,
            mode=outcome.extra.get("mode"),
            watermark=str(outcome.extra.get("watermark")),
            notion_requests=stats.requests
            + (outcome.extra.get("reconcile", {}).get("notion_requests", 0)),
            quarantined=dg.MetadataValue.md(_failures_preview(outcome)),
            **(
                {f"reconcile_{k}": v for k, v in outcome.extra["reconcile"].items()}
                if config.reconcile
                else {}
            ),
        )
    )


WINDOW_OP = "consultation_records_and_images"


@dg.multi_asset(
    name=WINDOW_OP,
    specs=[
        dg.AssetSpec(
            RECORDS_KEY,
            deps=[NOTION_CONSULTATIONS_KEY, CUSTOMERS_KEY],
            group_name=GROUP,
            kinds={"notion", "postgres", "supabase"},
            owners=OWNERS,
            skippable=True,
            freshness_policy=dg.FreshnessPolicy.time_window(
                fail_window=timedelta(hours=26), warn_window=timedelta(hours=13)
            ),
            metadata={
                "dagster/table_name": f"public.{RECORDS_TABLE}",
                "dagster/column_schema": RECORD_SCHEMA,
            },
            description="Backup of the Notion consultations database, partitioned by 상담일자 (Asia/Seoul). A range "
            "backfill is one run and one windowed Notion query (split past the 10,000-result cap). Rows "
            "of the window whose page was trashed or deleted become is_deleted.",
        ),
        dg.AssetSpec(
            IMAGES_KEY,
            deps=[RECORDS_KEY, DRIVE_IMAGES_KEY],
            group_name=GROUP,
            kinds={"googledrive", "supabase"},
            owners=OWNERS,
            skippable=True,
            freshness_policy=dg.FreshnessPolicy.time_window(
                fail_window=timedelta(hours=26), warn_window=timedelta(hours=13)
            ),
            metadata={
                "bucket": BUCKET,
                "layout": "customers/{customer_id}/consultations/{consultation_id}/image_{n}.{ext}",
            },
            description="Consultation images copied from Google Drive to the private bucket consultation-images "
            "(10 MB, JPEG/PNG/WebP): type sniffed from the bytes, unchanged images (same md5 / "
            "modifiedTime) not downloaded again; records get supabase_image_urls. Without "
            "SUPABASE_SERVICE_ROLE_KEY the Storage part is skipped with the reason in the metadata.",
        ),
    ],
    partitions_def=consultation_daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=NOTION_POOL,
    can_subset=True,
    check_specs=[
        dg.AssetCheckSpec(
            "notion_parity",
            asset=RECORDS_KEY,
            description="Every consultation Notion returned for the window is backed up "
            "(or quarantined), and nothing else is live in the window.",
        )
    ],
)
def consultation_records_and_images(
    context: dg.AssetExecutionContext,
    config: RecordsConfig,
    notion: NotionResource,
    google_drive: GoogleDriveResource,
    supabase_storage: SupabaseStorageResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
):
    """Records and images of a 상담일자 range in one step, so Drive copies overlap the rate-limited
    Notion reads (each committed batch's images are copied while the next batch is read)."""
    started = time.perf_counter()
    strategy = _strategy(config.conflict_strategy)
    start, end = _window(context)
    selected = context.selected_asset_keys
    since = config.edited_since or None
    window = f"{start}...{end}"
    result = images = None
    if RECORDS_KEY in selected:
        rlog = sync.SyncLog(
            supabase_db,
            "consultations",
            {"run_id": context.run.run_id, "strategy": strategy, "window": window},
        )
        ilog = (
            sync.SyncLog(supabase_db, "images", {"run_id": context.run.run_id, "window": window})
            if IMAGES_KEY in selected
            else None
        )
        try:
            if ilog is not None:
                result, images = sync.sync_records_and_images(
                    notion,
                    google_drive,
                    supabase_storage,
                    supabase_db,
                    consultation_settings.consultations_database_id,
                    start,
                    end,
                    strategy=strategy,
                    run_id=context.run.run_id,
                    edited_since=since,
                )
            else:
                result = sync.sync_records(
                    notion,
                    supabase_db,
                    consultation_settings.consultations_database_id,
                    start,
                    end,
                    strategy=strategy,
                    run_id=context.run.run_id,
                    edited_since=since,
                )
        except Exception as exc:
            rlog.finish(None, exc)
            if ilog is not None:
                ilog.finish(None, exc)
            raise
        rlog.finish(result.outcome)
    if IMAGES_KEY in selected:
        if images is None:
            ilog = sync.SyncLog(
                supabase_db, "images", {"run_id": context.run.run_id, "window": window}
            )
            try:
                images = sync.sync_images(
                    google_drive,
                    supabase_storage,
                    supabase_db,
                    start,
                    end,
                    run_id=context.run.run_id,
                )
            except Exception as exc:
                ilog.finish(None, exc)
                raise
        skipped_reason = images.extra.get("skipped_reason")
        ilog.finish(images, status="partial" if skipped_reason else None, message=skipped_reason)
    if result is not None:
        outcome = result.outcome
        if outcome.failures:
            context.log.warning(
                f"{outcome.failed} consultation page(s) quarantined:\n{_failures_preview(outcome)}"
            )
        yield dg.MaterializeResult(
            asset_key=RECORDS_KEY,
            metadata=run_metadata(
                started,
                **{"dagster/row_count": len(result.supabase_ids)},
                window=window,
                partitions=len(context.partition_keys),
                mode="edited_since" if since else "window",
                rows_read=outcome.total,
                rows_written=outcome.synced,
                rows_skipped_unchanged=outcome.skipped,
                rows_quarantined=outcome.failed,
                conflicts=outcome.conflicts,
                soft_deleted=result.soft_deleted,
                notion_requests=result.stats.requests,
                cap_splits=result.stats.cap_splits,
                quarantined=dg.MetadataValue.md(_failures_preview(outcome)),
            ),
        )
        missing, extra = sorted(result.missing_in_supabase), sorted(result.extra_in_supabase)
        yield dg.AssetCheckResult(
            asset_key=RECORDS_KEY,
            check_name="notion_parity",
            passed=not missing and not extra,
            metadata={
                "notion_pages": len(result.notion_ids),
                "supabase_live_rows": len(result.supabase_ids),
                "quarantined": outcome.failed,
                "missing_in_supabase": len(missing),
                "extra_in_supabase": len(extra),
                "sample": ", ".join((missing + extra)[:10]) or "none",
            },
        )
    if images is not None:
        skipped_reason = images.extra.get("skipped_reason")
        if skipped_reason:
            context.log.warning(f"Storage skipped: {skipped_reason}")
        if images.failures:
            context.log.warning(
                f"{images.failed} image(s) quarantined:\n{_failures_preview(images)}"
            )
        yield dg.MaterializeResult(
            asset_key=IMAGES_KEY,
            metadata=run_metadata(
                started,
                window=window,
                images_seen=images.total,
                images_uploaded=images.synced,
                images_unchanged=images.skipped,
                images_quarantined=images.failed,
                bytes_uploaded=images.extra.get("bytes_uploaded", 0),
                skipped_reason=skipped_reason or "none",
                quarantined=dg.MetadataValue.md(_failures_preview(images)),
            ),
        )


ASSETS = [consultation_customers, consultation_records_and_images]
