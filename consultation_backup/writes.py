"""Writing synced rows, shared by the customer and consultation syncs: skip unchanged rows,
apply the conflict strategy, refuse duplicate business ids, upsert on ``notion_page_id`` and
quarantine what cannot be written, all on the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from consultation_backup import transform as T
from consultation_backup.constants import (
    CUSTOMERS_TABLE,
    DOMAIN,
    RECORDS_TABLE,
    SOURCE_CONSULTATIONS,
    SOURCE_CUSTOMERS,
)
from consultation_backup.history import tag_run
from consultation_backup.models import (
    ConflictStrategy,
    CustomerRow,
    RecordRow,
    Rejected,
    SyncTotals,
)
from resources.notion import NotionPage
from resources.pgtext import storable
from resources.state import quarantine, resolve_quarantine

BATCH = 500
JSON_COLUMNS = frozenset({"face_embedding", "google_drive_urls"})

CUSTOMER_COLUMNS = (
    "notion_page_id",
    "customer_id",
    "name",
    "phone",
    "gender",
    "birth_date",
    "estimated_age",
    "address",
    "special_note",
    "face_embedding",
    "google_drive_folder_id",
    "consultation_count",
    "is_deleted",
    "notion_updated_at",
)
RECORD_COLUMNS = (
    "notion_page_id",
    "consultation_id",
    "customer_id",
    "customer_notion_id",
    "consultation_date",
    "symptoms",
    "patient_condition",
    "tongue_analysis",
    "special_note",
    "prescription",
    "result",
    "image_count",
    "google_drive_urls",
    "notion_created_at",
    "notion_updated_at",
    "is_deleted",
)


@dataclass(frozen=True)
class EntitySpec:
    """How one backed-up entity is written: table, columns, business key, what to compare."""

    entity: Literal["customer", "consultation"]
    table: str
    columns: tuple[str, ...]
    content_fields: tuple[str, ...]
    # changes that are written without counting as a content edit (never a conflict)
    bookkeeping_fields: tuple[str, ...]
    key: str
    source: str


CUSTOMERS = EntitySpec(
    "customer",
    CUSTOMERS_TABLE,
    CUSTOMER_COLUMNS,
    CustomerRow.CONTENT_FIELDS,
    ("notion_updated_at", "consultation_count", "customer_id"),
    "customer_id",
    SOURCE_CUSTOMERS,
)
RECORDS = EntitySpec(
    "consultation",
    RECORDS_TABLE,
    RECORD_COLUMNS,
    RecordRow.CONTENT_FIELDS,
    ("notion_updated_at", "customer_id"),
    "consultation_id",
    SOURCE_CONSULTATIONS,
)
SPECS: dict[str, EntitySpec] = {spec.entity: spec for spec in (CUSTOMERS, RECORDS)}


@dataclass
class Tally:
    """Running counts of one sync while it writes; ``freeze`` gives its ``SyncTotals``."""

    total: int = 0
    synced: int = 0
    skipped: int = 0
    conflicts: int = 0
    failures: list[Rejected] = field(default_factory=list)
    kept_supabase_version: list[str] = field(default_factory=list)
    customers_healed: int = 0

    def freeze(self) -> SyncTotals:
        return SyncTotals(
            self.total, self.synced, self.skipped, self.conflicts, tuple(self.failures)
        )


@dataclass(frozen=True)
class WriteScope:
    """One transaction of a sync: where rows go, how conflicts are settled, what is counted."""

    conn: psycopg.Connection[Any]
    strategy: ConflictStrategy
    run_id: str | None
    tally: Tally

    def __post_init__(self) -> None:
        # the versions this transaction writes (history trigger) name the run
        tag_run(self.conn, self.run_id)


Item = TypeVar("Item")


def batches(items: Iterable[Item], size: int = BATCH) -> Iterator[list[Item]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def reject(scope: WriteScope, source: str, rejected: Rejected, page: NotionPage | None) -> None:
    """Count ``rejected`` as a failure and quarantine it with the page it came from."""
    scope.tally.failures.append(rejected)
    quarantine(
        scope.conn,
        domain=DOMAIN,
        source=source,
        item_id=rejected.item_id,
        reason=rejected.reason,
        payload=storable(
            {"id": rejected.business_id, "page": page.as_json() if page is not None else None}
        ),
        run_id=scope.run_id,
    )


def existing_rows(
    conn: psycopg.Connection[Any], spec: EntitySpec, page_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The backed-up rows of these pages, with ``locally_edited`` (edited since their sync)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT *, (updated_at > synced_at) AS locally_edited FROM public.{spec.table}"
            " WHERE notion_page_id = ANY(%s)",
            (page_ids,),
        )
        return {r["notion_page_id"]: r for r in cur.fetchall()}


def _record_conflict(
    scope: WriteScope,
    spec: EntitySpec,
    notion_version: Mapping[str, Any],
    existing: Mapping[str, Any],
    fields: list[str],
) -> None:
    """Keep both versions for manual resolution; the backup row stays as it is, ``pending``."""
    supabase_version = {k: v for k, v in existing.items() if k != "locally_edited"}
    scope.conn.execute(
        """INSERT INTO public.consultation_sync_conflicts
             (entity, notion_page_id, business_id, strategy, notion_version, supabase_version,
              differing_fields, notion_updated_at, supabase_updated_at, run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (entity, notion_page_id) WHERE status = 'open' DO UPDATE
             SET notion_version = EXCLUDED.notion_version,
                 supabase_version = EXCLUDED.supabase_version,
                 differing_fields = EXCLUDED.differing_fields,
                 notion_updated_at = EXCLUDED.notion_updated_at,
                 supabase_updated_at = EXCLUDED.supabase_updated_at,
                 run_id = EXCLUDED.run_id, detected_at = now()""",
        (
            spec.entity,
            existing["notion_page_id"],
            notion_version[spec.key],
            scope.strategy,
            Jsonb(T.normalize(dict(notion_version))),
            Jsonb(T.normalize(supabase_version)),
            fields,
            notion_version.get("notion_updated_at"),
            existing.get("updated_at"),
            scope.run_id,
        ),
    )
    # 'pending' until someone resolves it (this also keeps the row "locally edited")
    scope.conn.execute(
        f"UPDATE public.{spec.table} SET sync_status = 'pending' WHERE notion_page_id = %s",
        (existing["notion_page_id"],),
    )


def decide(
    scope: WriteScope,
    spec: EntitySpec,
    rows: list[dict[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Rows to write after skipping unchanged ones and applying the conflict strategy."""
    out = []
    for values in rows:
        old = existing.get(values["notion_page_id"])
        if old is None:
            out.append(values)
            continue
        diff = T.differing_fields(values, old, spec.content_fields)
        bookkeeping = T.differing_fields(values, old, spec.bookkeeping_fields)
        revived = bool(old.get("is_deleted")) and not values.get("is_deleted", True)
        if not diff and not bookkeeping and not revived and old.get("sync_status") == "synced":
            scope.tally.skipped += 1
            continue
        decision = T.decide_conflict(
            scope.strategy,
            locally_edited=bool(old["locally_edited"]),
            differs=bool(diff),
            notion_updated_at=values["notion_updated_at"],
            supabase_updated_at=old.get("updated_at"),
        )
        if decision == "apply":
            out.append(values)
        elif decision == "keep":
            scope.tally.skipped += 1
            scope.tally.kept_supabase_version.append(values[spec.key])
        else:
            scope.tally.conflicts += 1
            _record_conflict(scope, spec, values, old, diff)
    return out


def drop_duplicate_ids(
    scope: WriteScope,
    spec: EntitySpec,
    rows: list[dict[str, Any]],
    pages: Mapping[str, NotionPage],
) -> list[dict[str, Any]]:
    """Quarantine rows whose business id another page already holds (in the backup or earlier
    in this batch); the first holder keeps it."""
    owners = dict(
        scope.conn.execute(
            f"SELECT {spec.key}, notion_page_id FROM public.{spec.table}"
            f" WHERE {spec.key} = ANY(%s)",
            ([r[spec.key] for r in rows],),
        ).fetchall()
    )
    kept: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for row in rows:
        business_id, page_id = row[spec.key], row["notion_page_id"]
        owner = owners.get(business_id) or seen.get(business_id)
        if owner is not None and owner != page_id:
            reason = (
                f"duplicate {spec.entity} id {business_id} (already backed up from page {owner})"
            )
            reject(scope, spec.source, Rejected(page_id, reason, business_id), pages.get(page_id))
            continue
        seen[business_id] = page_id
        kept.append(row)
    return kept


def upsert(scope: WriteScope, spec: EntitySpec, rows: list[dict[str, Any]]) -> None:
    """Insert or update ``rows`` on ``notion_page_id`` (marked synced) and close their open
    quarantine entries."""
    if not rows:
        return
    cols = ", ".join(spec.columns)
    placeholders = ", ".join(["%s"] * len(spec.columns))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in spec.columns if c != "notion_page_id")
    stmt = (
        f"INSERT INTO public.{spec.table} ({cols}) VALUES ({placeholders})"
        f" ON CONFLICT (notion_page_id) DO UPDATE SET {updates},"
        " synced_at = now(), sync_status = 'synced'"
    )
    params = [
        tuple(Jsonb(r[c]) if c in JSON_COLUMNS and r[c] is not None else r[c] for c in spec.columns)
        for r in rows
    ]
    with scope.conn.cursor() as cur:
        cur.executemany(stmt, params)
    scope.tally.synced += len(rows)
    for row in rows:
        resolve_quarantine(
            scope.conn, domain=DOMAIN, source=spec.source, item_id=row["notion_page_id"]
        )


def write_rows(
    scope: WriteScope,
    spec: EntitySpec,
    rows: list[dict[str, Any]],
    pages: Mapping[str, NotionPage],
) -> None:
    """The whole write of one batch: decide, refuse duplicates, upsert."""
    existing = existing_rows(scope.conn, spec, [r["notion_page_id"] for r in rows])
    to_write = decide(scope, spec, rows, existing)
    upsert(scope, spec, drop_duplicate_ids(scope, spec, to_write, pages))
