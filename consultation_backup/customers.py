"""The customer sync: Notion customer pages edited since the watermark (minus the overlap) into
``consultation_customers``, in batches, the watermark advanced with the last batch.

Delivery: at-least-once reads, idempotent writes (upsert on ``notion_page_id``); the watermark
is committed in the transaction of the last batch, so a crash re-reads and never skips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from consultation_backup import transform as T
from consultation_backup.constants import (
    CUSTOMERS_CURSOR,
    DOMAIN,
    OVERLAP_MINUTES,
    SOURCE_CUSTOMERS,
)
from consultation_backup.models import (
    ConflictStrategy,
    CustomerRow,
    CustomersResult,
    Rejected,
    ResolvedSchema,
)
from consultation_backup.notion_schema import SchemaReader, missing_properties, resolve_schema
from consultation_backup.writes import BATCH, CUSTOMERS, Tally, WriteScope, reject, write_rows
from resources.notion import PAGE_SIZE, NotionPage, NotionResource, QueryStats
from resources.postgres import PostgresResource
from resources.read_ahead import read_ahead
from resources.state import get_cursor, set_cursor


def edited_since_filter(since: str) -> dict[str, Any]:
    """Notion filter: pages edited on or after ``since``."""
    return {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": since}}


def upsert_customers(
    scope: WriteScope, rows: list[CustomerRow], pages: Mapping[str, NotionPage]
) -> None:
    """Write a batch of customer rows (conflicts, duplicate ids and quarantine included)."""
    write_rows(scope, CUSTOMERS, [r.as_dict() for r in rows], pages)


def _newest(current: str | None, pages: Iterable[NotionPage]) -> str | None:
    for page in pages:
        if current is None or page.last_edited_time > current:
            current = page.last_edited_time
    return current


def recount(conn: psycopg.Connection[Any], page_ids: list[str]) -> dict[str, int]:
    """Live consultations of these customers in the backup (customers not backed up yet are
    left out)."""
    rows = conn.execute(
        "SELECT c.notion_page_id, count(r.id) FROM public.consultation_customers c"
        " LEFT JOIN public.consultation_records r ON r.customer_id = c.id AND NOT r.is_deleted"
        " WHERE c.notion_page_id = ANY(%s) GROUP BY c.notion_page_id",
        (page_ids,),
    ).fetchall()
    return {page_id: int(n) for page_id, n in rows}


def parse_customers(
    scope: WriteScope, batch: list[NotionPage], schema: ResolvedSchema | None
) -> list[CustomerRow]:
    """Rows of (canonical, completed) customer pages; bad pages are quarantined with the
    reason. A 상담수 Notion cannot be trusted with (25 relations or more) is recounted in
    Supabase."""
    rows, untrusted = [], []
    for page in batch:
        scope.tally.total += 1
        try:
            missing = missing_properties(schema, page, "customers")
            if missing:
                raise T.InvalidPage(
                    f"properties missing from the page: {', '.join(missing)}",
                    T.text(page, "id") or None,
                )
            row = T.parse_customer(page)
        except T.InvalidPage as exc:
            reject(scope, SOURCE_CUSTOMERS, Rejected(page.id, exc.reason, exc.business_id), page)
            continue
        rows.append(row)
        if T.consultation_count(page) is None:
            untrusted.append(row.notion_page_id)
    if untrusted:
        counts = recount(scope.conn, untrusted)
        rows = [
            dataclasses.replace(r, consultation_count=counts[r.notion_page_id])
            if r.notion_page_id in counts
            else r
            for r in rows
        ]
    return rows


def _load_batch(scope: WriteScope, batch: list[NotionPage], schema: ResolvedSchema) -> None:
    """Parse and write one batch of pages; bad pages are quarantined with the reason."""
    rows = parse_customers(scope, batch, schema)
    if rows:
        upsert_customers(scope, rows, {p.id: p for p in batch})


def _soft_delete(conn: psycopg.Connection[Any], page_ids: list[str]) -> int:
    if not page_ids:
        return 0
    return conn.execute(
        "UPDATE public.consultation_customers SET is_deleted = true, synced_at = now()"
        " WHERE notion_page_id = ANY(%s) AND NOT is_deleted",
        (page_ids,),
    ).rowcount


def sync_customers(
    notion: NotionResource,
    db: PostgresResource,
    database_id: str,
    *,
    full: bool = False,
    strategy: ConflictStrategy = "notion_wins",
    run_id: str | None = None,
) -> CustomersResult:
    """Incremental (or full) customer sync: pages edited since the watermark minus the overlap.

    Trashed pages drop out of normal queries, so an incremental run also asks for the pages
    trashed since the watermark and soft-deletes their rows.
    """
    tally, stats = Tally(), QueryStats()
    # before anything is written: a removed/retyped property or a second data source stops here
    schema = resolve_schema(notion, db, database_id, "customers")
    ds = schema.data_source_id
    with db.transaction() as conn:
        watermark = get_cursor(conn, DOMAIN, CUSTOMERS_CURSOR)
    since = None if full else T.watermark_start(watermark, OVERLAP_MINUTES)
    flt = edited_since_filter(since) if since else None
    newest = watermark
    pending: list[NotionPage] = []
    reader = SchemaReader(notion, db, schema, "customers")
    # the next query page is requested while this batch is written
    for page in read_ahead(notion.iter_pages(ds, filter=flt, stats=stats), 2 * PAGE_SIZE):
        pending.append(reader.read(page))
        if len(pending) >= BATCH:
            with db.transaction() as conn:
                _load_batch(WriteScope(conn, strategy, run_id, tally), pending, schema)
            newest, pending = _newest(newest, pending), []
    trashed = list(notion.iter_pages(ds, filter=flt, stats=stats, in_trash=True)) if since else []
    newest = _newest(newest, [*pending, *trashed])
    with db.transaction() as conn:
        _load_batch(WriteScope(conn, strategy, run_id, tally), pending, schema)
        soft_deleted = _soft_delete(conn, [p.id for p in trashed])
        if newest:
            set_cursor(conn, DOMAIN, CUSTOMERS_CURSOR, newest)
    return CustomersResult(
        totals=tally.freeze(),
        mode="full" if since is None else "incremental",
        since=since,
        watermark=newest,
        soft_deleted=soft_deleted,
        kept_supabase_version=tuple(tally.kept_supabase_version),
        notion_requests=stats.requests,
        cap_splits=stats.cap_splits,
    )
