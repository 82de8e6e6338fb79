"""The Notion edits sensor: polls both data sources for pages edited since its cursor and
requests runs for exactly what changed (customers; the affected 상담일자 partitions)."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from consultation_backup import transform as T
from consultation_backup.assets import RecordsConfig, consultation_records_and_images
from consultation_backup.constants import OVERLAP_MINUTES
from consultation_backup.customers import edited_since_filter
from consultation_backup.jobs import customers_job, records_job
from consultation_backup.partitions import consultation_daily
from consultation_backup.settings import ConsultationSettings
from resources.notion import NotionPage, NotionResource

TAGS = {"trigger": "notion_edits_sensor"}


def _digest(pages: list[NotionPage]) -> str:
    body = json.dumps(sorted((p.id, p.last_edited_time, T.content_hash(p)) for p in pages))
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def _partition_of(page: NotionPage) -> str | None:
    try:
        day = T.parse_date(T.date_start(page, "상담일자"), "상담일자")
    except T.InvalidPage:
        return None
    return day.isoformat() if day else None


def _customer_request(
    notion: NotionResource, database_id: str, cursor: dict[str, str]
) -> tuple[dg.RunRequest | None, str]:
    """One customer sync when a customer page was edited or trashed since the cursor; the new
    cursor value."""
    ds = notion.data_source_id(database_id)
    flt = edited_since_filter(T.watermark_start(cursor["customers"], OVERLAP_MINUTES) or "")
    pages = list(notion.iter_pages(ds, filter=flt))
    pages += list(notion.iter_pages(ds, filter=flt, in_trash=True))
    if not pages:
        return None, cursor["customers"]
    request = dg.RunRequest(
        job_name=customers_job.name, run_key=f"customers:{_digest(pages)}", tags=TAGS
    )
    return request, max(cursor["customers"], *(p.last_edited_time for p in pages))


def _by_partition(
    context: dg.SensorEvaluationContext, pages: list[NotionPage], trashed_ids: set[str]
) -> tuple[dict[str, list[NotionPage]], set[str]]:
    """Edited pages per valid 상담일자 partition, and the partitions with a trashed page."""
    valid_keys = set(
        consultation_daily.get_partition_keys(dynamic_partitions_store=context.instance)
    )
    by_partition: dict[str, list[NotionPage]] = {}
    with_trash: set[str] = set()
    unplaced = []
    for page in pages:
        key = _partition_of(page)
        if key is not None and key in valid_keys:
            by_partition.setdefault(key, []).append(page)
            if page.id in trashed_ids:
                with_trash.add(key)
        else:
            unplaced.append(page.id)
    if unplaced:
        context.log.warning(
            f"{len(unplaced)} edited consultation(s) have no valid 상담일자 partition "
            f"(missing/unparseable/out of range): {', '.join(unplaced[:10])}"
        )
    return by_partition, with_trash


def _record_requests(
    context: dg.SensorEvaluationContext,
    notion: NotionResource,
    database_id: str,
    cursor: dict[str, str],
) -> tuple[list[dg.RunRequest], str]:
    """One records run per 상담일자 partition with an edited or trashed page; the new cursor."""
    ds = notion.data_source_id(database_id)
    since = T.watermark_start(cursor["consultations"], OVERLAP_MINUTES) or ""
    edited = list(notion.iter_pages(ds, filter=edited_since_filter(since)))
    # trashed pages drop out of normal queries; ask for them explicitly so a delete shows up
    # at once (one page of results is enough for a minute of edits)
    trashed = notion.query_data_source(
        ds, filter=edited_since_filter(since), in_trash=True, page_size=100
    ).results
    pages = edited + list(trashed)
    if not pages:
        return [], cursor["consultations"]
    by_partition, with_trash = _by_partition(context, pages, {p.id for p in trashed})
    op_name = consultation_records_and_images.op.name
    requests = []
    for key in sorted(by_partition):
        # edits only: read just the pages edited since the overlap start; a trashed page needs
        # the whole window (its sweep soft-deletes rows Notion no longer returns)
        run_config = (
            None
            if key in with_trash
            else dg.RunConfig(ops={op_name: RecordsConfig(edited_since=since)})
        )
        requests.append(
            dg.RunRequest(
                job_name=records_job.name,
                partition_key=key,
                run_key=f"consultations:{key}:{_digest(by_partition[key])}",
                run_config=run_config,
                tags=TAGS,
            )
        )
    return requests, max(cursor["consultations"], *(p.last_edited_time for p in pages))


@dg.sensor(
    name="notion_edits_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[customers_job, records_job],
    description="Every minute: pages edited in Notion since the cursor (minus a 2-minute overlap, "
    "because Notion rounds last_edited_time down to the minute). Requests the customer sync and "
    "one run per affected 상담일자 partition; run keys hash the pages' content, so a re-seen edit "
    "never runs twice and a second edit in the same minute still does.",
)
def notion_edits_sensor(
    context: dg.SensorEvaluationContext,
    notion: NotionResource,
    consultation_settings: ConsultationSettings,
) -> dg.SkipReason | list[dg.RunRequest]:
    cursor = json.loads(context.cursor) if context.cursor else {}
    if not cursor:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = (now - timedelta(minutes=OVERLAP_MINUTES)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        context.update_cursor(json.dumps({"customers": start, "consultations": start}))
        return dg.SkipReason(
            f"cursor initialised at {start}; earlier data is loaded by the initial backfill"
        )
    settings = consultation_settings
    customers, customers_cursor = _customer_request(notion, settings.customers_database_id, cursor)
    records, records_cursor = _record_requests(
        context, notion, settings.consultations_database_id, cursor
    )
    context.update_cursor(
        json.dumps({**cursor, "customers": customers_cursor, "consultations": records_cursor})
    )
    requests = ([customers] if customers else []) + records
    if not requests:
        return dg.SkipReason(
            f"no Notion page edited since {cursor['customers']} (customers) / "
            f"{cursor['consultations']} (consultations)"
        )
    return requests
