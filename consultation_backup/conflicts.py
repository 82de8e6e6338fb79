"""Sync conflicts of the ``manual`` strategy: list them, and resolve one by applying the Notion
version or keeping the backup's."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from psycopg.types.json import Jsonb

from consultation_backup import transform as T
from consultation_backup.customers import upsert_customers
from consultation_backup.models import (
    CONFLICT_STRATEGIES,
    ConflictStrategy,
    CustomerRow,
    RecordRow,
)
from consultation_backup.notion_schema import pinned_schema, read_page
from consultation_backup.records import upsert_records
from consultation_backup.writes import JSON_COLUMNS, SPECS, Tally, WriteScope
from resources.notion import NotionPage, NotionResource
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


def _latest_notion_row(
    notion: NotionResource, entity: str, page_id: str, db: PostgresResource | None = None
) -> tuple[NotionPage, CustomerRow | RecordRow]:
    """The page as Notion has it now, parsed (the conflict's stored version may be stale).

    Raises:
        LookupError: the page is trashed or gone (restore it, or keep the backup's side).
        ValueError: the page is invalid now (it would be quarantined).
    """
    page = notion.retrieve_page(page_id)
    if page is None or page.in_trash:
        state = "trashed" if page is not None else "gone"
        raise LookupError(f"page {page_id} is {state} in Notion; use --use supabase or restore")
    if db is not None:  # read by the pinned property ids: a renamed property is not "empty"
        page = read_page(
            notion,
            pinned_schema(db, "customers" if entity == "customer" else "consultations"),
            page,
        )
    try:
        row = T.parse_customer(page) if entity == "customer" else T.parse_consultation(page)
    except T.InvalidPage as exc:
        raise ValueError(f"page {page_id} is invalid in Notion now: {exc.reason}") from exc
    return page, row


def resolve_conflict(
    db: PostgresResource,
    conflict_id: int,
    use: Side,
    resolved_by: str = "cli",
    notion: NotionResource | None = None,
) -> Resolution:
    """Close a conflict. ``notion``: write the Notion version over the backup row (the page as
    Notion has it *now* when ``notion`` is given, else the version stored with the conflict);
    ``supabase``: keep the backup row. Either way the row is marked synced again.

    Raises:
        LookupError: no open conflict with this id, or its page is gone from Notion.
    """
    if use not in ("notion", "supabase"):
        raise ValueError("use must be 'notion' or 'supabase'")
    latest = None
    if use == "notion" and notion is not None:
        found = db.fetch_one(
            "SELECT entity, notion_page_id FROM public.consultation_sync_conflicts"
            " WHERE id = %s AND status = 'open'",
            (conflict_id,),
        )
        if found is None:
            raise LookupError(f"no open conflict with id {conflict_id}")
        latest = _latest_notion_row(notion, found["entity"], found["notion_page_id"], db)
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
        values = (
            _notion_values(entity, notion_version) if use == "notion" and latest is None else {}
        )
        assignments = "".join(f"{c} = %s, " for c in values)
        params = [Jsonb(v) if c in JSON_COLUMNS and v is not None else v for c, v in values.items()]
        conn.execute(
            f"UPDATE public.{table} SET {assignments}sync_status = 'synced', synced_at = now()"
            " WHERE notion_page_id = %s",
            (*params, page_id),
        )
        if latest is not None:
            # the row is "synced" again, so the normal write path applies Notion's page as is
            page, parsed = latest
            scope = WriteScope(conn, "notion_wins", f"conflict:{conflict_id}", Tally())
            if isinstance(parsed, CustomerRow):
                upsert_customers(scope, [parsed], {page.id: page})
            else:
                upsert_records(None, scope, [parsed], {page.id: page})
        conn.execute(
            "UPDATE public.consultation_sync_conflicts SET status = 'resolved', resolution = %s,"
            " resolved_by = %s, resolved_at = now() WHERE id = %s",
            (use, resolved_by, conflict_id),
        )
    return Resolution(conflict_id, entity, page_id, use)


# -- the conflict strategy of each table, kept in Supabase -------------------------------------
STRATEGY_TABLES = ("consultation_customers", "consultation_records")
DEFAULT_STRATEGY: ConflictStrategy = "notion_wins"


def stored_strategy(db: PostgresResource, table: str) -> ConflictStrategy:
    """The table's conflict strategy (``consultation_sync_settings``; none stored: notion_wins).

    Every run reads it (sensor, nightly, backfill), so ``manual`` holds across all of them."""
    value = db.fetch_value(
        "SELECT conflict_strategy FROM public.consultation_sync_settings WHERE table_name = %s",
        (table,),
    )
    return cast(ConflictStrategy, value or DEFAULT_STRATEGY)


def effective_strategy(
    db: PostgresResource, table: str, override: ConflictStrategy | Literal[""] = ""
) -> ConflictStrategy:
    """A run's strategy: the run config's explicit override if given, else the stored one."""
    return override or stored_strategy(db, table)


def set_strategy(
    db: PostgresResource, table: str, strategy: ConflictStrategy, updated_by: str = "cli"
) -> None:
    """Store the table's conflict strategy for every later run."""
    if table not in STRATEGY_TABLES:
        raise ValueError(f"table must be one of {', '.join(STRATEGY_TABLES)}")
    if strategy not in CONFLICT_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(CONFLICT_STRATEGIES)}")
    db.execute(
        "INSERT INTO public.consultation_sync_settings (table_name, conflict_strategy, updated_by)"
        " VALUES (%s, %s, %s) ON CONFLICT (table_name) DO UPDATE SET"
        " conflict_strategy = EXCLUDED.conflict_strategy, updated_by = EXCLUDED.updated_by,"
        " updated_at = now()",
        (table, strategy, updated_by),
    )
