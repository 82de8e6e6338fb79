"""Versions of the backed-up rows (``*_history`` tables, migration 0003): the run tag the
trigger records, and reads of the state the backup had observed at a point in time.

The versions themselves are written by a trigger in the transaction of every write, so no code
path (sync, soft delete, conflict resolution, restore re-pointing) can change a row without
leaving its previous state behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg

from resources.postgres import PostgresResource

RUN_SETTING = "consultation_backup.run_id"
Entity = Literal["customer", "consultation", "image"]
HISTORY_TABLES: dict[Entity, str] = {
    "customer": "consultation_customers_history",
    "consultation": "consultation_records_history",
    "image": "consultation_image_objects_history",
}
VERSIONS_PREFIX = "versions/"


def tag_run(conn: psycopg.Connection[Any], run_id: str | None) -> None:
    """Record ``run_id`` on the versions this transaction writes (transaction-local)."""
    if run_id:
        conn.execute("SELECT set_config(%s, %s, true)", (RUN_SETTING, run_id))


def _as_of_sql(entity: Entity, where: str) -> str:
    return (
        f"SELECT DISTINCT ON (entity_key) * FROM public.{HISTORY_TABLES[entity]}"
        f" WHERE valid_from <= %(at)s AND (valid_to IS NULL OR valid_to > %(at)s) AND {where}"
        " ORDER BY entity_key, valid_from DESC, history_id DESC"
    )


def versions_as_of(
    db: PostgresResource, entity: Entity, at: datetime, where: str = "true", **params: Any
) -> list[dict[str, Any]]:
    """The version of each row of ``entity`` valid at ``at`` (``where`` narrows, with named
    ``params``), oldest business id first."""
    rows = db.fetch_all(_as_of_sql(entity, where), {"at": at, **params})
    return sorted(rows, key=lambda r: (r["business_id"] or "", r["entity_key"]))


def version_path(storage_path: str, uploaded_at: str | datetime | None) -> str:
    """Where a superseded image object is kept: ``versions/<path stem>.<upload time>.<ext>``."""
    stamp = (
        uploaded_at.strftime("%Y%m%dT%H%M%S%fZ")
        if isinstance(uploaded_at, datetime)
        else "".join(ch for ch in str(uploaded_at or "unknown") if ch.isalnum())
    )
    stem, dot, ext = storage_path.rpartition(".")
    if not dot:
        return f"{VERSIONS_PREFIX}{storage_path}.{stamp}"
    return f"{VERSIONS_PREFIX}{stem}.{stamp}.{ext}"


def mark_moved(conn: psycopg.Connection[Any], entity_key: str, path: str) -> None:
    """Record where the bytes of an image's just-closed version now live."""
    conn.execute(
        "UPDATE public.consultation_image_objects_history SET version_path = %s"
        " WHERE history_id = (SELECT max(history_id)"
        " FROM public.consultation_image_objects_history"
        " WHERE entity_key = %s AND valid_to IS NOT NULL)",
        (path, entity_key),
    )


def image_copies_as_of(
    db: PostgresResource, consultation_ids: list[str], at: datetime
) -> list[str]:
    """Where the stored copy of each image of these consultations, as of ``at``, is now:
    ``<consultation_id>#<n>: <path>`` (its seed path while current, else its ``versions/``
    path)."""
    out = []
    for v in versions_as_of(db, "image", at, "business_id = ANY(%(c)s)", c=consultation_ids):
        current = v["valid_to"] is None
        path = v["row_data"]["storage_path"] if current else v["version_path"]
        out.append(f"{v['entity_key']}: {path or 'not kept (replaced before versions existed)'}")
    return out


def rows_without_current_version(db: PostgresResource, table: str) -> list[dict[str, Any]]:
    """Rows of ``table`` whose current history version is missing or differs from the row
    (bookkeeping columns aside): only a write with the history trigger disabled makes one."""
    hist = f"{table}_history"
    return db.fetch_all(
        f"""SELECT t.notion_page_id FROM public.{table} t
             LEFT JOIN public.{hist} h ON h.entity_key = t.id::text AND h.valid_to IS NULL
             WHERE h.history_id IS NULL
                OR (h.row_data - '{{synced_at,updated_at}}'::text[])
                   <> (to_jsonb(t) - '{{synced_at,updated_at}}'::text[])
             ORDER BY t.notion_page_id LIMIT 100"""
    )
