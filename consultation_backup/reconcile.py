"""The nightly reconciliation: every live Notion id against the backup. Rows whose page is
trashed or deleted in Notion become ``is_deleted = true`` (never a hard delete), and
``consultation_count`` is recomputed from the live records.

A mass-deletion guard comes first: when the run would soft-delete more than
``max_soft_delete_share`` (default 10%) of an entity's live rows, and at least
``min_guarded_rows`` (20) rows, it is a lost share, a wrong database id or an empty query far
more often than a real deletion, so the run stops with ``MassDeletionError`` and changes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from consultation_backup.constants import DOMAIN
from consultation_backup.history import tag_run
from consultation_backup.models import ReconcileResult
from resources.notifications import notify
from resources.notion import NotionResource, QueryStats
from resources.postgres import PostgresResource

DEFAULT_MAX_SOFT_DELETE_SHARE = 0.10
DEFAULT_MIN_GUARDED_ROWS = 20

RECOUNT = """
UPDATE public.consultation_customers c
   SET consultation_count = coalesce(s.n, 0), synced_at = now()
  FROM public.consultation_customers c2
  LEFT JOIN (SELECT customer_id, count(*) AS n FROM public.consultation_records
              WHERE NOT is_deleted GROUP BY customer_id) s ON s.customer_id = c2.id
 WHERE c.id = c2.id AND c.consultation_count IS DISTINCT FROM coalesce(s.n, 0)
"""


class MassDeletionError(RuntimeError):
    """A reconciliation would soft-delete too many rows at once; nothing was changed."""

    def __init__(self, entity: str, would_delete: int, live: int, share: float) -> None:
        self.entity, self.would_delete, self.live, self.share = entity, would_delete, live, share
        super().__init__(
            f"mass-deletion guard: the reconciliation would soft-delete {would_delete} of {live}"
            f" live {entity} rows (more than {share:.0%}); nothing was changed. Check the"
            " integration's access to the Notion database and its id; if the deletion is real,"
            " run the reconciliation once with a higher max_soft_delete_share."
        )


def _live_ids(notion: NotionResource, database_id: str, stats: QueryStats) -> set[str]:
    ds = notion.data_source_id(database_id)
    return {p.id for p in notion.iter_pages(ds, stats=stats, filter_properties=["title"])}


def _guard(
    conn: psycopg.Connection[Any],
    table: str,
    entity: str,
    live_in_notion: set[str],
    share: float,
    min_rows: int,
) -> None:
    """Raise ``MassDeletionError`` when soft-deleting the rows gone from Notion is too much."""
    live, gone = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE notion_page_id <> ALL(%s))"
        f" FROM public.{table} WHERE NOT is_deleted",
        (list(live_in_notion),),
    ).fetchone() or (0, 0)
    if gone >= min_rows and gone > share * live:
        raise MassDeletionError(entity, gone, live, share)


def _notify_blocked(db: PostgresResource, exc: MassDeletionError) -> None:
    with db.transaction() as conn:
        notify(
            conn,
            domain=DOMAIN,
            type="mass_deletion_blocked",
            severity="critical",
            title=f"Reconciliation stopped: {exc.would_delete} of {exc.live} {exc.entity} rows"
            " would be soft-deleted",
            message=str(exc),
            metadata={
                "entity": exc.entity,
                "would_delete": exc.would_delete,
                "live": exc.live,
                "max_share": exc.share,
            },
        )


def reconcile(
    notion: NotionResource,
    db: PostgresResource,
    customers_db: str,
    consultations_db: str,
    *,
    max_soft_delete_share: float = DEFAULT_MAX_SOFT_DELETE_SHARE,
    min_guarded_rows: int = DEFAULT_MIN_GUARDED_ROWS,
    run_id: str | None = None,
) -> ReconcileResult:
    """Soft-delete rows gone from Notion and recount consultations, in one transaction.

    Raises:
        MassDeletionError: the run would soft-delete more than ``max_soft_delete_share`` of an
            entity's live rows (and at least ``min_guarded_rows``); nothing is changed and a
            critical notification is written.
    """
    stats = QueryStats()
    live_customers = _live_ids(notion, customers_db, stats)
    live_records = _live_ids(notion, consultations_db, stats)
    try:
        with db.transaction() as conn:
            tag_run(conn, run_id)
            for table, entity, live in (
                ("consultation_records", "consultation", live_records),
                ("consultation_customers", "customer", live_customers),
            ):
                _guard(conn, table, entity, live, max_soft_delete_share, min_guarded_rows)
            deleted_records = conn.execute(
                "UPDATE public.consultation_records SET is_deleted = true, synced_at = now()"
                " WHERE NOT is_deleted AND notion_page_id <> ALL(%s)",
                (list(live_records),),
            ).rowcount
            deleted_customers = conn.execute(
                "UPDATE public.consultation_customers SET is_deleted = true, synced_at = now()"
                " WHERE NOT is_deleted AND notion_page_id <> ALL(%s)",
                (list(live_customers),),
            ).rowcount
            recounted = conn.execute(RECOUNT).rowcount
    except MassDeletionError as exc:
        _notify_blocked(db, exc)
        raise
    return ReconcileResult(
        soft_deleted_customers=deleted_customers,
        soft_deleted_records=deleted_records,
        consultation_counts_updated=recounted,
        notion_customers=len(live_customers),
        notion_consultations=len(live_records),
        notion_requests=stats.requests,
    )
