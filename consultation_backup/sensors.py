"""The Notion edits sensor: polls both data sources for pages edited since its cursor and
requests runs for exactly what changed (customers; the affected 상담일자 partitions)."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from consultation_backup import transform as T
from consultation_backup.constants import OVERLAP_MINUTES
from consultation_backup.jobs import customers_job, records_job

RECORDS_OP = "consultation_records_and_images"
from consultation_backup.partitions import consultation_daily
from consultation_backup.settings import ConsultationSettings
from resources.notion import NotionResource


def _edited_since(since: str) -> dict:
    return {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": since}}


def _digest(pages: list[dict]) -> str:
    body = json.dumps(sorted((p["id"], p["last_edited_time"], T.content_hash(p)) for p in pages))
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def _partition_of(page: dict) -> str | None:
    try:
        day = T.parse_date(T.date_start(page, "상담일자"), "상담일자")
    except T.InvalidPage:
        return None
    return day.isoformat() if day else None


@dg.sensor(
    name="notion_edits_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[customers_job, records_job],
    description="Every minute: pages edited in Notion since the cursor (minus a 2-minute overlap, because Notion "
    "rounds last_edited_time down to the minute). Requests the customer sync and one run per affected "
    "상담일자 partition; run keys hash the pages' content, so a re-seen edit never runs twice and a second "
    "edit in the same minute still does.",
)
def notion_edits_sensor(
    context: dg.SensorEvaluationContext,
    notion: NotionResource,
    consultation_settings: ConsultationSettings,
):
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    if not cursor:
        start = (now - timedelta(minutes=OVERLAP_MINUTES)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        context.update_cursor(json.dumps({"customers": start, "consultations": start}))
        return dg.SkipReason(
            f"cursor initialised at {start}; earlier data is loaded by the initial backfill"
        )
    requests: list[dg.RunRequest] = []
    new_cursor = dict(cursor)

    customers_ds = notion.data_source_id(consultation_settings.customers_database_id)
    since = T.watermark_start(cursor["customers"], OVERLAP_MINUTES)
    customers = list(notion.iter_pages(customers_ds, filter=_edited_since(since)))
    customers += list(notion.iter_pages(customers_ds, filter=_edited_since(since), in_trash=True))
    if customers:
        new_cursor["customers"] = max(
            cursor["customers"], *(p["last_edited_time"] for p in customers)
        )
        requests.append(
            dg.RunRequest(
                job_name=customers_job.name,
                run_key=f"customers:{_digest(customers)}",
                tags={"trigger": "notion_edits_sensor"},
            )
        )

    consult_ds = notion.data_source_id(consultation_settings.consultations_database_id)
    since = T.watermark_start(cursor["consultations"], OVERLAP_MINUTES)
    edited = list(notion.iter_pages(consult_ds, filter=_edited_since(since)))
    # trashed pages drop out of normal queries; ask for them explicitly so a delete shows up at once
    trashed = notion.call(
        "data_sources.query",
        data_source_id=consult_ds,
        filter=_edited_since(since),
        in_trash=True,
        page_size=100,
    ).get("results", [])
    pages = edited + trashed
    if pages:
        new_cursor["consultations"] = max(
            cursor["consultations"], *(p["last_edited_time"] for p in pages)
        )
    valid_keys = (
        set(consultation_daily.get_partition_keys(dynamic_partitions_store=context.instance))
        if pages
        else set()
    )
    by_partition: dict[str, list[dict]] = {}
    with_trash: set[str] = set()
    unplaced = []
    trashed_ids = {p["id"] for p in trashed}
    for page in pages:
        key = _partition_of(page)
        if key in valid_keys:
            by_partition.setdefault(key, []).append(page)
            if page["id"] in trashed_ids:
                with_trash.add(key)
        else:
            unplaced.append(page["id"])
    for key in sorted(by_partition):
        # edits only: read just the pages edited since the overlap start; a trashed page needs the
        # whole window (its sweep soft-deletes rows Notion no longer returns)
        config = {} if key in with_trash else {"edited_since": since}
        requests.append(
            dg.RunRequest(
                job_name=records_job.name,
                partition_key=key,
                run_key=f"consultations:{key}:{_digest(by_partition[key])}",
                run_config={"ops": {RECORDS_OP: {"config": config}}} if config else {},
                tags={"trigger": "notion_edits_sensor"},
            )
        )
    if unplaced:
        context.log.warning(
            f"{len(unplaced)} edited consultation(s) have no valid 상담일자 partition "
            f"(missing/unparseable/out of range): {', '.join(unplaced[:10])}"
        )
    context.update_cursor(json.dumps(new_cursor))
    if not requests:
        return dg.SkipReason(
            f"no Notion page edited since {cursor['customers']} (customers) / "
            f"{cursor['consultations']} (consultations)"
        )
    return requests
