"""Notion edits applied in one pass, whatever their 상담일자: the customers edited since the
watermark, the consultations edited since a time (one query over every date, not one run per
partition), the consultations trashed since then, and the edited consultations' images.

The edits job (``jobs.edits_job``) runs this once per sensor tick and reports a materialization
for each 상담일자 partition it touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from consultation_backup.customers import sync_customers
from consultation_backup.models import (
    ConflictStrategy,
    CustomersResult,
    ImagesResult,
    RecordsResult,
)
from consultation_backup.pipeline import sync_records_and_images
from consultation_backup.records import _sweep_one
from consultation_backup.writes import Tally, WriteScope
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

# Every 상담일자 Notion can hold, so an edit dated outside the partition range is backed up too.
ALL_DATES = (date(1900, 1, 1), date(2200, 1, 1))


@dataclass(frozen=True)
class EditsResult:
    """What one edits pass did, and the 상담일자 days it touched (for the materializations)."""

    customers: CustomersResult | None
    records: RecordsResult | None
    images: ImagesResult | None
    trashed: int = 0
    touched_days: tuple[date, ...] = field(default_factory=tuple)
    untouched_reason: str | None = None


def _days_of(db: PostgresResource, page_ids: Iterable[str], since: datetime) -> set[date]:
    """The 상담일자 of these pages in the backup now, and the one each had before this pass
    changed it (a page moved to another day changed the partition it left too). Read from the
    backup's columns and history, never from the pages' (renamable) property names."""
    ids = sorted(set(page_ids))
    if not ids:
        return set()
    rows = db.fetch_all(
        "SELECT consultation_date AS day FROM public.consultation_records"
        " WHERE notion_page_id = ANY(%s)"
        " UNION SELECT (row_data->>'consultation_date')::date"
        " FROM public.consultation_records_history"
        " WHERE notion_page_id = ANY(%s) AND valid_to >= %s",
        (ids, ids, since),
    )
    return {r["day"] for r in rows if r["day"] is not None}


def apply_trashed(
    notion: NotionResource,
    db: PostgresResource,
    page_ids: list[str],
    *,
    strategy: ConflictStrategy,
    run_id: str | None,
) -> int:
    """Soft-delete the consultations whose pages are trashed or gone (a page restored since is
    written again); each in its own transaction. Returns how many were soft-deleted."""
    deleted = 0
    for page_id in page_ids:
        page = notion.retrieve_page(page_id)
        with db.transaction() as conn:
            deleted += _sweep_one(
                notion, WriteScope(conn, strategy, run_id, Tally()), page_id, page
            )
    return deleted


def sync_edits(
    notion: NotionResource,
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    db: PostgresResource,
    *,
    customers_database_id: str,
    consultations_database_id: str,
    consultations_since: str | None,
    trashed_page_ids: list[str],
    sync_customer_edits: bool,
    customer_strategy: ConflictStrategy,
    record_strategy: ConflictStrategy,
    run_id: str | None = None,
) -> EditsResult:
    """Customers first (a consultation may point at a new customer), then every consultation
    edited since ``consultations_since`` in one query with its images, then the trashed ones."""
    customers = (
        sync_customers(notion, db, customers_database_id, strategy=customer_strategy, run_id=run_id)
        if sync_customer_edits
        else None
    )
    records = images = None
    touched: set[date] = set()
    started = db.fetch_value("SELECT now()")
    if consultations_since:
        both = sync_records_and_images(
            notion,
            drive,
            storage,
            db,
            consultations_database_id,
            *ALL_DATES,
            strategy=record_strategy,
            run_id=run_id,
            edited_since=consultations_since,
        )
        records, images = both.records, both.images
        touched |= _days_of(db, records.notion_ids, started)
    trashed = 0
    if trashed_page_ids:
        trashed = apply_trashed(
            notion, db, trashed_page_ids, strategy=record_strategy, run_id=run_id
        )
        touched |= _days_of(db, trashed_page_ids, started)
    return EditsResult(customers, records, images, trashed, tuple(sorted(touched)))
