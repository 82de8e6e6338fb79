"""Restore: recreate customers and consultations (with their image links) in a Notion database
from the Supabase backup. Dry run by default; idempotent (pages are matched by customer id /
consultation id, so a second run creates nothing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from consultation_backup import transform as T
from consultation_backup.restore_properties import consultation_properties, customer_properties
from resources.notion import NotionResource
from resources.postgres import PostgresResource


@dataclass(frozen=True)
class RestoreReport:
    """What a restore found and created (``planned``: what is missing from Notion)."""

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


@dataclass(frozen=True)
class _Target:
    """Where and how to restore."""

    notion: NotionResource
    db: PostgresResource
    customers_ds: str
    consultations_ds: str
    dry_run: bool
    relink: bool
    log: Callable[[str], None]


@dataclass(frozen=True)
class _Pass:
    """The outcome of restoring one entity: in the backup, present, created, planned."""

    in_backup: int
    present: int
    created: int
    planned: list[str]


def _index(notion: NotionResource, data_source_id: str) -> dict[str, str]:
    """title (business id) -> page id of the live pages of a data source."""
    out: dict[str, str] = {}
    for page in notion.iter_pages(data_source_id, filter_properties=["title"]):
        key = T.text(page, "id")
        if key:
            out.setdefault(key, page.id)
    return out


def _backup_customers(db: PostgresResource, customer_ids: list[str] | None) -> list[dict[str, Any]]:
    """The live customers of the backup (or only these)."""
    where, params = "WHERE NOT is_deleted", []
    if customer_ids:
        where += " AND customer_id = ANY(%s)"
        params.append(customer_ids)
    return db.fetch_all(
        f"SELECT * FROM public.consultation_customers {where} ORDER BY customer_id", params
    )


def _backup_records(db: PostgresResource, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live consultations of these backed-up customers."""
    return db.fetch_all(
        "SELECT * FROM public.consultation_records WHERE NOT is_deleted AND customer_id = ANY(%s)"
        " ORDER BY consultation_id",
        ([r["id"] for r in customers],),
    )


def _relink_customer(db: PostgresResource, row_id: Any, page_id: str) -> None:
    """Point the backup rows of a customer at its recreated page."""
    db.execute(
        "UPDATE public.consultation_customers SET notion_page_id = %s, synced_at = now()"
        " WHERE id = %s",
        (page_id, row_id),
    )
    db.execute(
        "UPDATE public.consultation_records SET customer_notion_id = %s, synced_at = now()"
        " WHERE customer_id = %s",
        (page_id, row_id),
    )


def _restore_customers(
    target: _Target,
    customers: list[dict[str, Any]],
    in_notion: dict[str, str],
    page_of: dict[Any, str | None],
) -> _Pass:
    """Create the customers Notion lacks; ``page_of`` gets each backup row's page (or None)."""
    present = created = 0
    planned: list[str] = []
    for row in customers:
        existing = in_notion.get(row["customer_id"])
        if existing:
            present += 1
            page_of[row["id"]] = existing
            continue
        planned.append(f"customer {row['customer_id']}")
        page_of[row["id"]] = None
        if target.dry_run:
            continue
        page = target.notion.create_page(target.customers_ds, customer_properties(row))
        created += 1
        page_of[row["id"]] = page.id
        target.log(f"restored customer {row['customer_id']} as page {page.id}")
        if target.relink:
            _relink_customer(target.db, row["id"], page.id)
    return _Pass(len(customers), present, created, planned)


def _restore_consultations(
    target: _Target,
    records: list[dict[str, Any]],
    in_notion: dict[str, str],
    page_of: dict[Any, str | None],
) -> _Pass:
    """Create the consultations Notion lacks, under their (possibly recreated) customers."""
    present = created = 0
    planned: list[str] = []
    for row in records:
        if row["consultation_id"] in in_notion:
            present += 1
            continue
        planned.append(f"consultation {row['consultation_id']}")
        customer_page = page_of.get(row["customer_id"])
        if target.dry_run or customer_page is None:
            continue
        props = consultation_properties(row, customer_page)
        page = target.notion.create_page(target.consultations_ds, props)
        created += 1
        if target.relink:
            target.db.execute(
                "UPDATE public.consultation_records SET notion_page_id = %s, synced_at = now()"
                " WHERE id = %s",
                (page.id, row["id"]),
            )
    return _Pass(len(records), present, created, planned)


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
        relink: point the backup rows at the recreated pages (when restoring into the live
            databases).
    """
    before = notion.caller.stats["requests"]
    target = _Target(
        notion,
        db,
        notion.data_source_id(customers_database_id),
        notion.data_source_id(consultations_database_id),
        dry_run,
        relink,
        log,
    )
    customers = _backup_customers(db, customer_ids)
    page_of: dict[Any, str | None] = {}
    customers_in_notion = _index(notion, target.customers_ds)
    consultations_in_notion = _index(notion, target.consultations_ds)
    cust = _restore_customers(target, customers, customers_in_notion, page_of)
    records = _backup_records(db, customers)
    cons = _restore_consultations(target, records, consultations_in_notion, page_of)
    report = RestoreReport(
        dry_run=dry_run,
        customers_in_backup=cust.in_backup,
        customers_present=cust.present,
        customers_created=cust.created,
        consultations_in_backup=cons.in_backup,
        consultations_present=cons.present,
        consultations_created=cons.created,
        notion_requests=notion.caller.stats["requests"] - before,
        planned=cust.planned + cons.planned,
    )
    log(
        f"restore {'(dry run) ' if dry_run else ''}customers: {report.customers_created} "
        f"created, {report.customers_present} present; consultations: "
        f"{report.consultations_created} created, {report.consultations_present} present; "
        f"planned {len(report.planned)}"
    )
    return report
