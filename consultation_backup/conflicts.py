"""Sync conflicts of the ``manual`` strategy: list them, and resolve one by applying the Notion
version or keeping the backup's."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from psycopg.types.json import Jsonb

from consultation_backup.writes import JSON_COLUMNS, SPECS
from resources.postgres import PostgresResource

Side = Literal["notion", "supabase"]


@dataclass(frozen=True)
class Resolution:
    """A conflict closed: which row, and which side was kept."""

    id: int
    entity: str
    notion_page_id: str
    resolution: Side

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_conflicts(db: PostgresResource, include_resolved: bool = False) -> list[dict[str, Any]]:
    """Open conflicts (or all), oldest first."""
    where = "" if include_resolved else "WHERE status = 'open'"
    return db.fetch_all(
        "SELECT id, entity, business_id, notion_page_id, strategy, differing_fields,"
        " notion_updated_at, supabase_updated_at, status, resolution, detected_at, resolved_at"
        f" FROM public.consultation_sync_conflicts {where} ORDER BY detected_at"
    )


def _notion_values(entity: str, notion_version: dict[str, Any]) -> dict[str, Any]:
    """The columns of the stored Notion version that overwrite the backup row."""
    values = {
        c: notion_version.get(c)
        for c in SPECS[entity].columns
        if c not in ("notion_page_id", "customer_id") and c in notion_version
    }
    # a consultation's customer_id is the backup's uuid, not the Notion version's
    if entity == "customer" and "customer_id" in notion_version:
        values["customer_id"] = notion_version["customer_id"]
    return values


def resolve_conflict(
    db: PostgresResource, conflict_id: int, use: Side, resolved_by: str = "cli"
) -> Resolution:
    """Close a conflict. ``notion``: write the stored Notion version over the backup row;
    ``supabase``: keep the backup row. Either way the row is marked synced again.

    Raises:
        LookupError: no open conflict with this id.
    """
    if use not in ("notion", "supabase"):
        raise ValueError("use must be 'notion' or 'supabase'")
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT entity, notion_page_id, notion_version FROM public.consultation_sync_conflicts"
            " WHERE id = %s AND status = 'open' FOR UPDATE",
            (conflict_id,),
        ).fetchone()
        if row is None:
            raise LookupError(f"no open conflict with id {conflict_id}")
        entity, page_id, notion_version = row
        table = SPECS[entity].table
        values = _notion_values(entity, notion_version) if use == "notion" else {}
        assignments = "".join(f"{c} = %s, " for c in values)
        params = [Jsonb(v) if c in JSON_COLUMNS and v is not None else v for c, v in values.items()]
        conn.execute(
            f"UPDATE public.{table} SET {assignments}sync_status = 'synced', synced_at = now()"
            " WHERE notion_page_id = %s",
            (*params, page_id),
        )
        conn.execute(
            "UPDATE public.consultation_sync_conflicts SET status = 'resolved', resolution = %s,"
            " resolved_by = %s, resolved_at = now() WHERE id = %s",
            (use, resolved_by, conflict_id),
        )
    return Resolution(conflict_id, entity, page_id, use)
