"""The weekly full comparison: every page id and ``last_edited_time`` of both Notion databases
against the backup, so whatever the edits sensor missed (a daemon that was down longer than
the overlap, a page dated outside every partition, a lost run) is found and backed up.

Only ids and edit times are compared (the pages come from one unfiltered query per database,
split past the 10,000-result cap). A page missing from the backup or newer in Notion is synced
again through the normal paths (conflicts, quarantine and history included); rows live in the
backup but gone from Notion are counted and left to the nightly reconcile (which soft-deletes
them behind the mass-deletion guard).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from consultation_backup import transform as T
from consultation_backup.constants import OVERLAP_MINUTES
from consultation_backup.customers import sync_customers
from consultation_backup.edits import ALL_DATES
from consultation_backup.models import ConflictStrategy, CustomersResult, RecordsResult
from consultation_backup.records import sync_records
from resources.notion import NotionResource, QueryStats
from resources.postgres import PostgresResource


@dataclass(frozen=True)
class Comparison:
    """One database compared: what Notion has that the backup lacks or holds older."""

    table: str
    notion_pages: int
    missing_in_backup: tuple[str, ...]
    newer_in_notion: tuple[str, ...]
    gone_from_notion: tuple[str, ...]
    oldest_missed_edit: str | None
    notion_requests: int

    @property
    def missed(self) -> tuple[str, ...]:
        return self.missing_in_backup + self.newer_in_notion

    def as_dict(self) -> dict[str, Any]:
        return {
            "notion_pages": self.notion_pages,
            "missing_in_backup": len(self.missing_in_backup),
            "newer_in_notion": len(self.newer_in_notion),
            "gone_from_notion": len(self.gone_from_notion),
            "sample": ", ".join(self.missed[:10]) or "none",
            "notion_requests": self.notion_requests,
        }


@dataclass(frozen=True)
class CompareResult:
    customers: Comparison
    consultations: Comparison
    customers_sync: CustomersResult | None = None
    records_sync: RecordsResult | None = None
    touched_days: tuple[date, ...] = field(default_factory=tuple)


def _quarantined(db: PostgresResource, source: str) -> set[str]:
    rows = db.fetch_all(
        "SELECT DISTINCT item_id FROM public.data_quarantine"
        " WHERE domain = 'consultation_backup' AND source = %s AND resolved_at IS NULL",
        (source,),
    )
    return {r["item_id"] for r in rows}


def compare_table(
    notion: NotionResource, db: PostgresResource, database_id: str, table: str, source: str
) -> Comparison:
    """Every page id and last_edited_time of the database against ``table``."""
    stats = QueryStats()
    ds = notion.data_source_id(database_id)
    in_notion: dict[str, str] = {
        p.id: p.last_edited_time for p in notion.iter_pages(ds, stats=stats)
    }
    backup: dict[str, tuple[datetime | None, bool]] = {
        r["notion_page_id"]: (r["notion_updated_at"], r["is_deleted"])
        for r in db.fetch_all(
            f"SELECT notion_page_id, notion_updated_at, is_deleted FROM public.{table}"
        )
    }
    excused = _quarantined(db, source)  # a bad page is quarantined, not missed
    missing, newer = [], []
    for page_id, edited in in_notion.items():
        row = backup.get(page_id)
        if page_id in excused:
            continue
        if row is None:
            missing.append(page_id)
        elif row[1] or row[0] is None or row[0] < T.parse_timestamp(edited):
            newer.append(page_id)
    gone = sorted(i for i, (_, deleted) in backup.items() if not deleted and i not in in_notion)
    missed = missing + newer
    oldest = min((in_notion[i] for i in missed), default=None)
    return Comparison(
        table,
        len(in_notion),
        tuple(sorted(missing)),
        tuple(sorted(newer)),
        tuple(gone),
        oldest,
        stats.requests,
    )


def compare_and_repair(
    notion: NotionResource,
    db: PostgresResource,
    *,
    customers_database_id: str,
    consultations_database_id: str,
    customer_strategy: ConflictStrategy,
    record_strategy: ConflictStrategy,
    run_id: str | None = None,
) -> CompareResult:
    """Compare both databases and back up what was missed (customers first: consultations
    point at them)."""
    customers = compare_table(
        notion, db, customers_database_id, "consultation_customers", "notion/customers"
    )
    customers_sync = None
    if customers.missed:
        customers_sync = sync_customers(
            notion, db, customers_database_id, full=True, strategy=customer_strategy, run_id=run_id
        )
    consultations = compare_table(
        notion, db, consultations_database_id, "consultation_records", "notion/consultations"
    )
    records_sync = None
    touched: set[date] = set()
    if consultations.missed and consultations.oldest_missed_edit:
        since = T.watermark_start(consultations.oldest_missed_edit, OVERLAP_MINUTES)
        records_sync = sync_records(
            notion,
            db,
            consultations_database_id,
            *ALL_DATES,
            strategy=record_strategy,
            run_id=run_id,
            edited_since=since,
        )
        rows = db.fetch_all(
            "SELECT DISTINCT consultation_date FROM public.consultation_records"
            " WHERE notion_page_id = ANY(%s)",
            (list(consultations.missed),),
        )
        touched = {r["consultation_date"] for r in rows if r["consultation_date"] is not None}
    return CompareResult(
        customers, consultations, customers_sync, records_sync, tuple(sorted(touched))
    )
