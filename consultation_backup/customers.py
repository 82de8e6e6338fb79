"""The customer sync: Notion customer pages edited since the watermark (minus the overlap) into
``consultation_customers``, in batches, the watermark advanced with the last batch.

Delivery: at-least-once reads, idempotent writes (upsert on ``notion_page_id``); the watermark
is committed in the transaction of the last batch, so a crash re-reads and never skips.
"""

from __future__ import annotations

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
from consultation_backup.models import ConflictStrategy, CustomerRow, CustomersResult, Rejected
from consultation_backup.writes import BATCH, CUSTOMERS, Tally, WriteScope, reject, write_rows
from resources.notion import NotionPage, NotionResource, QueryStats
from resources.postgres import PostgresResource
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


def _load_batch(scope: WriteScope, batch: list[NotionPage]) -> None:
    """Parse and write one batch of pages; bad pages are quarantined with the reason."""
    rows = []
    for page in batch:
        scope.tally.total += 1
        try:
            rows.append(T.parse_customer(page))
        except T.InvalidPage as exc:
            reject(scope, SOURCE_CUSTOMERS, Rejected(page.id, exc.reason, exc.business_id), page)
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
    ds = notion.data_source_id(database_id)
    with db.transaction() as conn:
        watermark = get_cursor(conn, DOMAIN, CUSTOMERS_CURSOR)
    since = None if full else T.watermark_start(watermark, OVERLAP_MINUTES)
    flt = edited_since_filter(since) if since else None
    newest = watermark
    pending: list[NotionPage] = []
    for page in notion.iter_pages(ds, filter=flt, stats=stats):
        pending.append(page)
        if len(pending) >= BATCH:
            with db.transaction() as conn:
                _load_batch(WriteScope(conn, strategy, run_id, tally), pending)
            newest, pending = _newest(newest, pending), []
    trashed = list(notion.iter_pages(ds, filter=flt, stats=stats, in_trash=True)) if since else []
    newest = _newest(newest, [*pending, *trashed])
    with db.transaction() as conn:
        _load_batch(WriteScope(conn, strategy, run_id, tally), pending)
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
