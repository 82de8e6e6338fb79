"""Restore: recreate customers and consultations (with their image links) in a Notion database
from the Supabase backup. Dry run by default; idempotent (pages are matched by customer id /
consultation id, so a second run creates nothing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from consultation_backup import transform as T
from resources.notion import NotionResource
from resources.postgres import PostgresResource


@dataclass
class RestoreReport:
    dry_run: bool
    customers_in_backup: int = 0
    customers_present: int = 0
    customers_created: int = 0
    consultations_in_backup: int = 0
    consultations_present: int = 0
    consultations_created: int = 0
    notion_requests: int = 0
    planned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _index(notion: NotionResource, data_source_id: str) -> dict[str, str]:
    """title (business id) -> page id of the live pages of a data source."""
    out: dict[str, str] = {}
    for page in notion.iter_pages(data_source_id, filter_properties=["title"]):
        key = T.text(page, "id")
        if key:
            out.setdefault(key, page["id"])
    return out


def restore(
    notion: NotionResource,
    db: PostgresResource,
    *,
    customers_database_id: str,
    consultations_database_id: str,
    dry_run: bool = True,
    customer_ids: list[str] | None = None,
    relink: bool = True,
    log: Callable[[str], None] = print,
) -> RestoreReport:
    """Create in Notion what the backup has and Notion lacks.

    Args:
        dry_run: only list what would be created (``planned``).
        customer_ids: restrict to these customers (and their consultations).
        relink: point the backup rows at the recreated pages (when restoring into the live databases).
    """
    report = RestoreReport(dry_run=dry_run)
    before = notion.caller.stats["requests"]
    cust_ds = notion.data_source_id(customers_database_id)
    cons_ds = notion.data_source_id(consultations_database_id)
    customers_in_notion = _index(notion, cust_ds)
    consultations_in_notion = _index(notion, cons_ds)
    where, params = "WHERE NOT is_deleted", []
    if customer_ids:
        where += " AND customer_id = ANY(%s)"
        params.append(customer_ids)
    customers = db.fetch_all(
        f"SELECT * FROM public.consultation_customers {where} ORDER BY customer_id", params
    )
    report.customers_in_backup = len(customers)
    page_of: dict[Any, str | None] = {}
    for row in customers:
        existing = customers_in_notion.get(row["customer_id"])
        if existing:
            report.customers_present += 1
            page_of[row["id"]] = existing
            continue
        report.planned.append(f"customer {row['customer_id']}")
        if dry_run:
            page_of[row["id"]] = None
            continue
        page = notion.create_page(cust_ds, T.customer_properties(row))
        report.customers_created += 1
        page_of[row["id"]] = page["id"]
        log(f"restored customer {row['customer_id']} as page {page['id']}")
        if relink:
            db.execute(
                "UPDATE public.consultation_customers SET notion_page_id = %s, synced_at = now() WHERE id = %s",
                (page["id"], row["id"]),
            )
            db.execute(
                "UPDATE public.consultation_records SET customer_notion_id = %s, synced_at = now()"
                " WHERE customer_id = %s",
                (page["id"], row["id"]),
            )
    records = db.fetch_all(
        "SELECT * FROM public.consultation_records WHERE NOT is_deleted AND customer_id = ANY(%s) ORDER BY consultation_id",
        ([r["id"] for r in customers],),
    )
    report.consultations_in_backup = len(records)
    for row in records:
        if row["consultation_id"] in consultations_in_notion:
            report.consultations_present += 1
            continue
        report.planned.append(f"consultation {row['consultation_id']}")
        customer_page = page_of.get(row["customer_id"])
        if dry_run or customer_page is None:
            continue
        page = notion.create_page(cons_ds, T.consultation_properties(row, customer_page))
        report.consultations_created += 1
        if relink:
            db.execute(
                "UPDATE public.consultation_records SET notion_page_id = %s, synced_at = now() WHERE id = %s",
                (page["id"], row["id"]),
            )
    report.notion_requests = notion.caller.stats["requests"] - before
    log(
        f"restore {'(dry run) ' if dry_run else ''}customers: {report.customers_created} created, "
        f"{report.customers_present} present; consultations: {report.consultations_created} created, "
        f"{report.consultations_present} present; planned {len(report.planned)}"
    )
    return report
