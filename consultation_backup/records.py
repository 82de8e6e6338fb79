"""The consultation sync of a 상담일자 window: one windowed Notion query (split past the
10,000-result cap) into ``consultation_records``, then a sweep that soft-deletes rows of the
window whose page is trashed or gone.

A consultation whose customer is missing from the backup heals it (the customer page is
retrieved and backed up) or, when that page is trashed or invalid, is quarantined as a broken
relation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from consultation_backup import transform as T
from consultation_backup.constants import SOURCE_CONSULTATIONS
from consultation_backup.customers import edited_since_filter, parse_customers, upsert_customers
from consultation_backup.models import (
    ConflictStrategy,
    RecordRow,
    RecordsResult,
    Rejected,
    ResolvedSchema,
)
from consultation_backup.notion_schema import (
    SchemaReader,
    load_pinned,
    missing_properties,
    read_page,
    resolve_schema,
)
from consultation_backup.writes import RECORDS, Tally, WriteScope, batches, reject, write_rows
from resources.errors import PermanentError
from resources.notion import PAGE_SIZE, NotionPage, NotionResource, QueryStats
from resources.postgres import PostgresResource
from resources.read_ahead import read_ahead


@dataclass(frozen=True)
class CustomerRef:
    """A backed-up customer as a consultation row needs it."""

    row_id: Any  # consultation_customers.id (uuid)
    customer_id: str


def _customer_map(conn: psycopg.Connection[Any], page_ids: list[str]) -> dict[str, CustomerRef]:
    rows = conn.execute(
        "SELECT notion_page_id, id, customer_id FROM public.consultation_customers"
        " WHERE notion_page_id = ANY(%s)",
        (page_ids,),
    ).fetchall()
    return {page_id: CustomerRef(row_id, cid) for page_id, row_id, cid in rows}


def pinned(conn: psycopg.Connection[Any], kind: str) -> ResolvedSchema | None:
    """The schema pinned for ``kind`` by its last sync (read by id), without asking Notion."""
    ds_id, properties = load_pinned(conn, kind=kind)
    if ds_id is None:
        return None
    return ResolvedSchema("", ds_id, properties)


def _heal_customers(notion: NotionResource, scope: WriteScope, missing: set[str]) -> dict[str, str]:
    """Back up customers a consultation points at but the backup lacks (created after the last
    customer sync). Returns, for those that cannot be backed up, the reason."""
    pages: dict[str, NotionPage] = {}
    reasons: dict[str, str] = {}
    schema = pinned(scope.conn, "customers")
    for page_id in sorted(missing):
        page = notion.retrieve_page(page_id)
        if page is None or page.in_trash:
            state = "trashed" if page else "not"
            reasons[page_id] = f"customer page {page_id} is {state} in Notion"
            continue
        pages[page_id] = read_page(notion, schema, page)
    # parsed (and quarantined) apart: the healed customers follow Notion and are not counted
    # with the consultations
    sub = WriteScope(scope.conn, "notion_wins", scope.run_id, Tally())
    rows = parse_customers(sub, list(pages.values()), schema)
    for f in sub.tally.failures:
        reasons[f.item_id] = f"customer page {f.item_id} is quarantined ({f.reason})"
    sub.tally.failures.clear()
    if rows:
        upsert_customers(sub, rows, pages)
        scope.tally.customers_healed += sub.tally.synced
        for f in sub.tally.failures:
            reasons[f.item_id] = f"customer page {f.item_id} is quarantined ({f.reason})"
    return reasons


def _with_customers(
    notion: NotionResource | None,
    scope: WriteScope,
    rows: list[RecordRow],
    pages: Mapping[str, NotionPage],
) -> list[dict[str, Any]]:
    """Rows whose customer is backed up (healed if need be) and owns the consultation id, as
    table rows; the others are quarantined."""
    wanted = list({r.customer_notion_id for r in rows})
    customers = _customer_map(scope.conn, wanted)
    reasons: dict[str, str] = {}
    if set(wanted) - set(customers) and notion is not None:
        reasons = _heal_customers(notion, scope, set(wanted) - set(customers))
        customers = _customer_map(scope.conn, wanted)
    resolved = []
    for row in rows:
        hit = customers.get(row.customer_notion_id)
        if hit is None:
            why = reasons.get(row.customer_notion_id) or (
                f"customer page {row.customer_notion_id} is not backed up"
            )
            reason = f"broken relation: {why}"
        elif not T.consultation_matches_customer(row.consultation_id, hit.customer_id):
            reason = (
                f"consultation id {row.consultation_id} does not belong to customer"
                f" {hit.customer_id}"
            )
        else:
            resolved.append({**row.as_dict(), "customer_id": hit.row_id, "is_deleted": False})
            continue
        rejected = Rejected(row.notion_page_id, reason, row.consultation_id)
        reject(scope, SOURCE_CONSULTATIONS, rejected, pages.get(row.notion_page_id))
    return resolved


def upsert_records(
    notion: NotionResource | None,
    scope: WriteScope,
    rows: list[RecordRow],
    pages: Mapping[str, NotionPage],
) -> None:
    """Write a batch of consultation rows (customers resolved, conflicts, duplicates,
    quarantine included)."""
    write_rows(scope, RECORDS, _with_customers(notion, scope, rows, pages), pages)


def _parse(page: NotionPage, schema: ResolvedSchema | None) -> RecordRow:
    missing = missing_properties(schema, page, "consultations")
    if missing:
        raise T.InvalidPage(
            f"properties missing from the page: {', '.join(missing)}", T.text(page, "id") or None
        )
    return T.parse_consultation(page)


def _load_batch(
    notion: NotionResource,
    scope: WriteScope,
    batch: list[NotionPage],
    schema: ResolvedSchema | None = None,
) -> None:
    rows = []
    for page in batch:
        scope.tally.total += 1
        try:
            rows.append(_parse(page, schema))
        except T.InvalidPage as exc:
            rejected = Rejected(page.id, exc.reason, exc.business_id)
            reject(scope, SOURCE_CONSULTATIONS, rejected, page)
    if rows:
        upsert_records(notion, scope, rows, {p.id: p for p in batch})
        raise_counts(scope.conn, [r.customer_notion_id for r in rows])


# A count of 25 or more may be Notion's formula stopping at 25 relations: the backup's live
# records raise it (never lower it: a window sees only part of a customer's consultations; the
# nightly reconcile recounts everything).
RAISE_COUNTS = """
UPDATE public.consultation_customers c
   SET consultation_count = s.n, synced_at = now()
  FROM (SELECT r.customer_id, count(*) AS n FROM public.consultation_records r
          JOIN public.consultation_customers c2 ON c2.id = r.customer_id
         WHERE c2.notion_page_id = ANY(%s) AND NOT r.is_deleted
         GROUP BY r.customer_id) s
 WHERE c.id = s.customer_id AND c.consultation_count >= %s AND s.n > c.consultation_count
"""


def raise_counts(conn: psycopg.Connection[Any], customer_page_ids: list[str]) -> int:
    """Raise ``consultation_count`` of these customers past Notion's 25-relation formula to the
    number of their live records in the backup; returns how many customers changed."""
    return conn.execute(RAISE_COUNTS, (list(set(customer_page_ids)), T.PAGE_REFERENCE_CAP)).rowcount


def _window_ids(db: PostgresResource, start: date, end: date) -> list[str]:
    """Page ids of the window's live rows in the backup."""
    rows = db.fetch_all(
        "SELECT notion_page_id FROM public.consultation_records"
        " WHERE consultation_date >= %s AND consultation_date < %s AND NOT is_deleted",
        (start, end),
    )
    return [r["notion_page_id"] for r in rows]


def _sweep_one(
    notion: NotionResource,
    scope: WriteScope,
    page_id: str,
    page: NotionPage | None,
    schema: ResolvedSchema | None = None,
) -> int:
    """Soft-delete a row whose page is trashed or purged (returns 1), or write the page again
    when it still lives (moved to another date: the new date moves the row). ``schema``
    (default: the pinned one) maps the raw page's properties by id."""
    if page is not None:
        page = read_page(notion, schema or pinned(scope.conn, "consultations"), page)
    if page is None or page.in_trash:
        return scope.conn.execute(
            "UPDATE public.consultation_records SET is_deleted = true, synced_at = now()"
            " WHERE notion_page_id = %s",
            (page_id,),
        ).rowcount
    try:
        row = _parse(page, schema)
    except T.InvalidPage as exc:
        rejected = Rejected(page_id, exc.reason, exc.business_id)
        reject(scope, SOURCE_CONSULTATIONS, rejected, page)
        return 0
    # counted apart: this row is not part of what Notion returned for the window
    apart = WriteScope(scope.conn, scope.strategy, scope.run_id, Tally())
    upsert_records(notion, apart, [row], {page_id: page})
    return 0


def _sweep(
    notion: NotionResource,
    db: PostgresResource,
    window: tuple[date, date],
    seen: set[str],
    scope_of: Callable[[psycopg.Connection[Any]], WriteScope],
    schema: ResolvedSchema | None = None,
) -> int:
    """Rows of the window Notion no longer returned: each settled in its own transaction.
    Returns how many were soft-deleted."""
    soft_deleted = 0
    for page_id in [i for i in _window_ids(db, *window) if i not in seen]:
        page = notion.retrieve_page(page_id)
        with db.transaction() as conn:
            soft_deleted += _sweep_one(notion, scope_of(conn), page_id, page, schema)
    return soft_deleted


def window_filter(
    start: date, end: date, edited_since: str | None, date_property: str = "상담일자"
) -> dict[str, Any]:
    """Notion filter: 상담일자 (given by property id) in ``[start, end)`` or empty (an undated
    page is in no window: it comes with every window to be quarantined), edited on or after
    ``edited_since`` if set. One query, nested two levels at most (Notion's limit)."""
    window: list[dict[str, Any]] = list(T.date_window_filter(start, end, date_property)["and"])
    undated: list[dict[str, Any]] = [{"property": date_property, "date": {"is_empty": True}}]
    if edited_since:
        window.append(edited_since_filter(edited_since))
        undated.append(edited_since_filter(edited_since))
    return {"or": [{"and": window}, undated[0] if len(undated) == 1 else {"and": undated}]}


def sync_records(
    notion: NotionResource,
    db: PostgresResource,
    database_id: str,
    start: date,
    end: date,
    *,
    strategy: ConflictStrategy = "notion_wins",
    run_id: str | None = None,
    edited_since: str | None = None,
    on_batch: Callable[[list[str]], None] | None = None,
) -> RecordsResult:
    """Back up every consultation with 상담일자 in ``[start, end)``, then soft-delete rows of the
    window whose page is trashed or gone.

    With ``edited_since`` (what the sensor passes) only pages edited on or after that time are
    read, and the trash sweep is skipped: a handful of requests for a handful of edits.
    ``on_batch`` gets the consultation ids of each committed batch (the images follow them).
    """
    tally, stats = Tally(), QueryStats()

    def scope_of(conn: psycopg.Connection[Any]) -> WriteScope:
        return WriteScope(conn, strategy, run_id, tally)

    # before anything is written: a removed/retyped property or a second data source stops here
    schema = resolve_schema(notion, db, database_id, "consultations")
    ds = schema.data_source_id
    seen: set[str] = set()
    flt = window_filter(start, end, edited_since, schema.id_of("상담일자"))
    reader = SchemaReader(notion, db, schema, "consultations")
    # the next query page is requested while this batch is written
    ahead = read_ahead(notion.iter_pages(ds, filter=flt, stats=stats), 2 * PAGE_SIZE)
    pages = (reader.read(p) for p in ahead)
    try:
        for batch in batches(pages):
            # undated pages come with the window to be quarantined; they are not part of it
            seen.update(p.id for p in batch if T.date_start(p, "상담일자"))
            with db.transaction() as conn:
                _load_batch(notion, scope_of(conn), batch, reader.schema)
            if on_batch is not None:
                on_batch([T.text(p, "id") for p in batch])
    except PermanentError as exc:
        reader.explain(exc)  # a filter on a removed/retyped 상담일자: the named error
        raise
    soft_deleted = 0
    if edited_since:
        supabase_ids = seen - {f.item_id for f in tally.failures}
    else:
        soft_deleted = _sweep(notion, db, (start, end), seen, scope_of, reader.schema)
        supabase_ids = set(_window_ids(db, start, end))
    return RecordsResult(
        totals=tally.freeze(),
        window=f"{start.isoformat()}...{end.isoformat()}",
        edited_since=edited_since,
        soft_deleted=soft_deleted,
        customers_healed=tally.customers_healed,
        kept_supabase_version=tuple(tally.kept_supabase_version),
        notion_requests=stats.requests,
        cap_splits=stats.cap_splits,
        notion_ids=frozenset(seen),
        supabase_ids=frozenset(supabase_ids),
    )
