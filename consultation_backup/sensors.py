"""The Notion edits sensor: polls both data sources for pages edited since its cursor and
requests ONE run per tick for everything that changed (customers, consultations of any
상담일자, trashed consultations)."""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from consultation_backup import transform as T
from consultation_backup.constants import OVERLAP_MINUTES
from consultation_backup.customers import edited_since_filter
from consultation_backup.health import check_health
from consultation_backup.jobs import EditsConfig, apply_notion_edits, edits_job
from consultation_backup.settings import ConsultationSettings
from consultation_backup.webhook import mark_handled, pending_events
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionPage, NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

TAGS = {"trigger": "notion_edits_sensor"}
# one query per database every 15 s is ~0.13 requests/s of Notion's 3/s
SENSOR_INTERVAL_S = 15
TRASH_CHECK_INTERVAL_S = 60


def _digest(pages: list[NotionPage]) -> str:
    body = json.dumps(sorted((p.id, p.last_edited_time, T.content_hash(p)) for p in pages))
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def _since(cursor_value: str) -> str:
    return T.watermark_start(cursor_value, OVERLAP_MINUTES) or ""


def _ds(notion: NotionResource, cursor: dict[str, Any], database_id: str) -> str:
    """The database's data source id, kept in the cursor: the sensor's resources are built anew
    for every tick, and a ``databases.retrieve`` per database per tick would double its cost
    (the runs check the schema and the data sources themselves)."""
    known: dict[str, str] = cursor.setdefault("data_sources", {})
    if database_id not in known:
        known[database_id] = notion.data_source_id(database_id)
    return known[database_id]


def _edited(notion: NotionResource, ds: str, since: str) -> list[NotionPage]:
    """Pages of the data source edited since ``since``: one query (one page of 100 results
    covers a tick's edits; more are paged)."""
    return list(notion.iter_pages(ds, filter=edited_since_filter(since)))


def _trashed(notion: NotionResource, ds: str, since: str) -> list[NotionPage]:
    """Pages trashed since ``since`` (they drop out of normal queries)."""
    return list(
        notion.query_data_source(
            ds, filter=edited_since_filter(since), in_trash=True, page_size=100
        ).results
    )


def edits_request(
    notion: NotionResource,
    settings: ConsultationSettings,
    cursor: dict[str, Any],
    now: float,
) -> tuple[dg.RunRequest | None, dict[str, Any], str]:
    """The one run request of a tick (or None), the new cursor and a summary.

    One query per database per tick for edits; the trash is asked for once a minute (a trashed
    page lands within a minute; the nightly reconcile catches purged pages)."""
    customers_since, records_since = _since(cursor["customers"]), _since(cursor["consultations"])
    cursor = {**cursor, "data_sources": dict(cursor.get("data_sources") or {})}
    customers_ds = _ds(notion, cursor, settings.customers_database_id)
    records_ds = _ds(notion, cursor, settings.consultations_database_id)
    customers = _edited(notion, customers_ds, customers_since)
    records = _edited(notion, records_ds, records_since)
    trashed_records: list[NotionPage] = []
    trash_due = now - float(cursor.get("trash_checked_at", 0)) >= TRASH_CHECK_INTERVAL_S
    if trash_due:
        customers += _trashed(notion, customers_ds, customers_since)
        trashed_records = _trashed(notion, records_ds, records_since)
    new_cursor = {
        **cursor,
        "customers": max([cursor["customers"], *(p.last_edited_time for p in customers)]),
        "consultations": max(
            [cursor["consultations"], *(p.last_edited_time for p in [*records, *trashed_records])]
        ),
        **({"trash_checked_at": now} if trash_due else {}),
    }
    summary = (
        f"{len(customers)} customer page(s), {len(records)} consultation(s) edited, "
        f"{len(trashed_records)} trashed since {customers_since} / {records_since}"
    )
    if not customers and not records and not trashed_records:
        return None, new_cursor, summary
    op_name = apply_notion_edits.name
    config = EditsConfig(
        customers=bool(customers),
        consultations_since=records_since if records else "",
        trashed_page_ids=sorted(p.id for p in trashed_records),
    )
    request = dg.RunRequest(
        job_name=edits_job.name,
        run_key=f"edits:{_digest([*customers, *records, *trashed_records])}",
        run_config=dg.RunConfig(ops={op_name: config}),
        tags=TAGS,
    )
    return request, new_cursor, summary


def _initial_cursor() -> dict[str, Any]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = (now - timedelta(minutes=OVERLAP_MINUTES)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"customers": start, "consultations": start}


@dg.sensor(
    name="notion_edits_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[edits_job],
    description="Every 15 s: pages edited in Notion since the cursor (minus a 2-minute overlap, "
    "because Notion rounds last_edited_time down to the minute), one query per database; the "
    "trash once a minute. Requests ONE run of consultation_edits_job for everything edited, "
    "whatever its 상담일자; run keys hash the pages' content, so a re-seen edit never runs "
    "twice and a second edit in the same minute still does.",
)
def notion_edits_sensor(
    context: dg.SensorEvaluationContext,
    notion: NotionResource,
    consultation_settings: ConsultationSettings,
) -> dg.SkipReason | dg.RunRequest:
    cursor = json.loads(context.cursor) if context.cursor else {}
    if not cursor:
        cursor = _initial_cursor()
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(
            f"cursor initialised at {cursor['customers']}; earlier data is loaded by the "
            "initial backfill"
        )
    request, new_cursor, summary = edits_request(notion, consultation_settings, cursor, time.time())
    context.update_cursor(json.dumps(new_cursor))
    if request is None:
        return dg.SkipReason(f"no Notion page edited: {summary}")
    context.log.info(summary)
    return request


@dg.sensor(
    name="consultation_health_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute (seed 004): probes Notion, Google Drive and Supabase Storage once "
    "each and records their health in consultation_service_health (never launches a run); a "
    "service failing for 30 minutes warns, all failing at once is critical (notifications).",
)
def consultation_health_sensor(
    context: dg.SensorEvaluationContext,
    notion: NotionResource,
    google_drive: GoogleDriveResource,
    supabase_storage: SupabaseStorageResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> dg.SkipReason:
    probes, alerts = check_health(
        notion,
        google_drive,
        supabase_storage,
        supabase_db,
        consultation_settings.customers_database_id,
    )
    summary = ", ".join(
        f"{p.service} {'ok' if p.healthy else 'DOWN'} ({p.latency_ms} ms)" for p in probes
    )
    for p in probes:
        if not p.healthy:
            context.log.warning(f"{p.service} unhealthy: {p.error}")
    return dg.SkipReason(
        f"health: {summary}" + (f"; alerts: {', '.join(alerts)}" if alerts else "")
    )


def webhook_request(
    notion: NotionResource, settings: ConsultationSettings, events: list[dict[str, Any]]
) -> dg.RunRequest:
    """One edits run for a batch of webhook events (Notion sends ids only: the run reads the
    pages edited since the oldest event, minus the overlap, whatever their 상담일자)."""
    consultations_ds = notion.data_source_id(settings.consultations_database_id)
    records = [e for e in events if e["data_source_id"] == consultations_ds]
    schema_changed = any(e["event_type"] == "data_source.schema_updated" for e in events)
    customers = schema_changed or any(e["data_source_id"] != consultations_ds for e in events)
    oldest = min((e["event_timestamp"] for e in records if e["event_timestamp"]), default=None)
    since = (
        T.watermark_start(oldest.strftime("%Y-%m-%dT%H:%M:%S.000Z"), OVERLAP_MINUTES)
        if oldest is not None
        else None
    )
    trashed = sorted(
        {e["entity_id"] for e in records if e["event_type"] == "page.deleted" and e["entity_id"]}
    )
    config = EditsConfig(
        customers=customers, consultations_since=since or "", trashed_page_ids=trashed
    )
    ids = sorted(str(e["event_id"]) for e in events)
    digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]
    return dg.RunRequest(
        job_name=edits_job.name,
        run_key=f"webhook:{digest}",
        run_config=dg.RunConfig(ops={apply_notion_edits.name: config}),
        tags={"trigger": "notion_webhook_sensor"},
    )


@dg.sensor(
    name="notion_webhook_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[edits_job],
    description="Every 5 s: Notion webhook events recorded by the receiver "
    "(python -m consultation_backup.webhook) become one consultation_edits_job run; with no "
    "subscription it finds nothing, and notion_edits_sensor's polling stays the safety net.",
)
def notion_webhook_sensor(
    context: dg.SensorEvaluationContext,
    notion: NotionResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> dg.SkipReason | dg.RunRequest:
    events = pending_events(supabase_db)
    if not events:
        return dg.SkipReason("no pending Notion webhook events")
    request = webhook_request(notion, consultation_settings, events)
    mark_handled(supabase_db, [str(e["event_id"]) for e in events])
    context.log.info(f"{len(events)} webhook event(s) -> one edits run")
    return request


SENSORS = [notion_edits_sensor, consultation_health_sensor, notion_webhook_sensor]
