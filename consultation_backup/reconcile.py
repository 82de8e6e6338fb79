"""The nightly reconciliation: every live Notion id against the backup. Rows whose page is
trashed or deleted in Notion become ``is_deleted = true`` (never a hard delete), and
``consultation_count`` is recomputed from the live records."""

from __future__ import annotations

from consultation_backup.models import ReconcileResult
from resources.notion import NotionResource, QueryStats
from resources.postgres import PostgresResource

RECOUNT = """
UPDATE public.consultation_customers c
   SET consultation_count = coalesce(s.n, 0), synced_at = now()
  FROM public.consultation_customers c2
  LEFT JOIN (SELECT customer_id, count(*) AS n FROM public.consultation_records
              WHERE NOT is_deleted GROUP BY customer_id) s ON s.customer_id = c2.id
 WHERE c.id = c2.id AND c.consultation_count IS DISTINCT FROM coalesce(s.n, 0)
"""


def _live_ids(notion: NotionResource, database_id: str, stats: QueryStats) -> set[str]:
    ds = notion.data_source_id(database_id)
    return {p.id for p in notion.iter_pages(ds, stats=stats, filter_properties=["title"])}


def reconcile(
    notion: NotionResource, db: PostgresResource, customers_db: str, consultations_db: str
) -> ReconcileResult:
    """Soft-delete rows gone from Notion and recount consultations, in one transaction."""
    stats = QueryStats()
    live_customers = _live_ids(notion, customers_db, stats)
    live_records = _live_ids(notion, consultations_db, stats)
    with db.transaction() as conn:
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
    return ReconcileResult(
        soft_deleted_customers=deleted_customers,
        soft_deleted_records=deleted_records,
        consultation_counts_updated=recounted,
        notion_customers=len(live_customers),
        notion_consultations=len(live_records),
        notion_requests=stats.requests,
    )
