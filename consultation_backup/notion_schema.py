"""Reads that survive Notion schema changes (issue 10 §2).

Before a sync writes anything it resolves the data source's schema (``databases.retrieve`` +
``data_sources.retrieve``) against the properties pinned by earlier runs
(``consultation_notion_properties``): properties are followed by their stable id, so a rename
keeps syncing; a removed or retyped property, or a second data source in the database, stops
the run with ``NotionSchemaChanged`` (saying what changed) and a ``notifications`` row, and the
backup is left as it is. Pages are then read in the seed's property names (``read_page``),
with relations and people past the page object's 25-reference cap completed through
``pages.properties.retrieve``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import psycopg

from consultation_backup import transform as T
from consultation_backup.constants import (
    CONSULTATION_OPTIONAL_PROPERTIES,
    CONSULTATION_PROPERTIES,
    CUSTOMER_OPTIONAL_PROPERTIES,
    CUSTOMER_PROPERTIES,
    DOMAIN,
    NOTIFY_SCHEMA_CHANGED,
)
from consultation_backup.models import PinnedProperty, ResolvedSchema
from resources.errors import PermanentError
from resources.notifications import notify
from resources.notion import NotionPage, NotionResource
from resources.postgres import PostgresResource

Kind = Literal["customers", "consultations"]
EXPECTED: dict[str, tuple[Mapping[str, frozenset[str]], Mapping[str, frozenset[str]]]] = {
    "customers": (CUSTOMER_PROPERTIES, CUSTOMER_OPTIONAL_PROPERTIES),
    "consultations": (CONSULTATION_PROPERTIES, CONSULTATION_OPTIONAL_PROPERTIES),
}


class NotionSchemaChanged(PermanentError):
    """The Notion schema changed in a way the backup cannot follow safely; ``changes`` says
    what (removed or retyped property, a second data source). Nothing was written."""

    def __init__(self, kind: str, database_id: str, changes: list[str]) -> None:
        super().__init__(
            f"Notion {kind} schema changed (database {database_id}): " + "; ".join(changes),
            409,
            "notion_schema_changed",
        )
        self.kind, self.database_id, self.changes = kind, database_id, list(changes)


def load_pinned(
    conn: psycopg.Connection[Any], *, database_id: str | None = None, kind: str | None = None
) -> tuple[str | None, dict[str, PinnedProperty]]:
    """The pinned data source id and properties of a database (or of the one database of a
    kind); ``(None, {})`` when nothing is pinned."""
    where, params = ("database_id = %s", database_id) if database_id else ("kind = %s", kind)
    rows = conn.execute(
        "SELECT database_id, data_source_id, canonical_name, property_id, property_type,"
        f" current_name FROM public.consultation_notion_properties WHERE {where}"
        " ORDER BY database_id",
        (params,),
    ).fetchall()
    if not rows or len({r[0] for r in rows}) != 1:
        return None, {}
    return rows[0][1], {r[2]: PinnedProperty(r[2], r[3], r[4], r[5]) for r in rows}


def _save(
    conn: psycopg.Connection[Any],
    kind: str,
    database_id: str,
    data_source_id: str,
    properties: Mapping[str, PinnedProperty],
) -> None:
    for p in properties.values():
        conn.execute(
            "INSERT INTO public.consultation_notion_properties (database_id, kind,"
            " canonical_name, data_source_id, property_id, property_type, current_name)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (database_id, canonical_name) DO UPDATE SET"
            " current_name = EXCLUDED.current_name, seen_at = now()",
            (database_id, kind, p.canonical, data_source_id, p.property_id, p.type, p.name),
        )


def _fail(db: PostgresResource, kind: str, database_id: str, changes: list[str]) -> None:
    """Notify (committed on its own) and raise: the run stops before any write."""
    digest = hashlib.sha1("\n".join(sorted(changes)).encode()).hexdigest()[:12]
    with db.transaction() as conn:
        notify(
            conn,
            domain=DOMAIN,
            type=NOTIFY_SCHEMA_CHANGED,
            severity="error",
            title=f"Notion {kind} schema changed: the backup stopped before writing",
            message="; ".join(changes),
            metadata={"kind": kind, "database_id": database_id, "changes": changes},
            dedupe_key=f"notion_schema:{database_id}:{digest}",
        )
    raise NotionSchemaChanged(kind, database_id, changes)


def resolve_schema(
    notion: NotionResource,
    db: PostgresResource,
    database_id: str,
    kind: Kind,
    *,
    verify: bool = False,
) -> ResolvedSchema:
    """The data source of ``database_id`` and the properties to read, by id.

    One request (``databases.retrieve``: a second or replaced data source) when properties are
    pinned already: their ids and types are then checked on every page read
    (``SchemaReader``), and the data source's schema is read only when a page disagrees. The
    first run, or ``verify``, also reads the schema (``data_sources.retrieve``) and pins it.

    Raises:
        NotionSchemaChanged: a second data source, a replaced data source, or a required
            property removed / retyped / missing (a notification is written first).
    """
    database = notion.retrieve_database(database_id)
    with db.transaction() as conn:
        pinned_ds, pinned = load_pinned(conn, database_id=database_id)
    sources = database.data_sources
    if len(sources) != 1:
        names = ", ".join(f"{s.name or '?'} ({s.id})" for s in sources) or "none"
        _fail(
            db,
            kind,
            database_id,
            [f"the database has {len(sources)} data sources ({names}); the backup reads one"],
        )
    ds_id = sources[0].id
    if pinned_ds is not None and pinned_ds != ds_id:
        _fail(db, kind, database_id, [f"the data source {pinned_ds} was replaced by {ds_id}"])
    required, optional = EXPECTED[kind]
    if pinned_ds is not None and not verify and all(c in pinned for c in required):
        return ResolvedSchema(database_id, ds_id, pinned)
    schema = notion.retrieve_data_source(ds_id)
    current = [(p.id, p.name, p.type) for p in schema.properties]
    properties, changes = T.resolve_properties(required, optional, pinned, current)
    if changes:
        _fail(db, kind, database_id, changes)
    with db.transaction() as conn:
        _save(conn, kind, database_id, ds_id, properties)
    return ResolvedSchema(database_id, ds_id, properties)


class SchemaReader:
    """Reads pages of one data source by the pinned property ids, checking each page against
    them before it can be written: a page whose pinned properties are missing or of another
    type makes it read the data source's schema once (``resolve_schema(verify=True)``), which
    stops the run if the schema changed."""

    def __init__(
        self, notion: NotionResource, db: PostgresResource, schema: ResolvedSchema, kind: Kind
    ) -> None:
        self.notion, self.db, self.schema, self.kind = notion, db, schema, kind
        self.verified = False
        self.names_seen = False

    def _disagrees(self, page: NotionPage) -> bool:
        types = {str(v.get("id")): v.get("type") for v in page.properties.values() if v}
        required, _ = EXPECTED[self.kind]
        return any(
            types.get(p.property_id) != p.type
            for c, p in self.schema.properties.items()
            if c in required
        )

    def explain(self, exc: PermanentError) -> None:
        """A query Notion refused (400: e.g. a filter on a property that was removed or
        retyped): raise ``NotionSchemaChanged`` if the schema changed; else return."""
        if exc.status == 400 and not self.verified:
            self.schema = resolve_schema(
                self.notion, self.db, self.schema.database_id, self.kind, verify=True
            )
            self.verified = True

    def _follow_renames(self, page: NotionPage) -> None:
        """Record the names the pinned properties have now (once per run, from a page)."""
        names = {str(v.get("id")): n for n, v in page.properties.items() if v}
        renamed = {
            c: dataclasses.replace(p, name=names[p.property_id])
            for c, p in self.schema.properties.items()
            if p.property_id in names and names[p.property_id] != p.name
        }
        if renamed:
            with self.db.transaction() as conn:
                _save(
                    conn,
                    self.kind,
                    self.schema.database_id,
                    self.schema.data_source_id,
                    renamed,
                )
            properties = {**self.schema.properties, **renamed}
            self.schema = dataclasses.replace(self.schema, properties=properties)

    def read(self, page: NotionPage) -> NotionPage:
        """The page completed past the reference cap, keyed by canonical names."""
        if not self.verified and self._disagrees(page):
            self.schema = resolve_schema(
                self.notion, self.db, self.schema.database_id, self.kind, verify=True
            )
            self.verified = True
        if not self.names_seen:
            self._follow_renames(page)
            self.names_seen = True
        return read_page(self.notion, self.schema, page)


def pinned_schema(db: PostgresResource, kind: Kind) -> ResolvedSchema | None:
    """The schema pinned for ``kind`` without asking Notion (None before the first sync)."""
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT DISTINCT database_id FROM public.consultation_notion_properties"
            " WHERE kind = %s",
            (kind,),
        ).fetchall()
        if len(rows) != 1:
            return None
        ds_id, properties = load_pinned(conn, database_id=rows[0][0])
    return ResolvedSchema(rows[0][0], ds_id or "", properties) if ds_id else None


def complete(notion: NotionResource, page: NotionPage) -> NotionPage:
    """The page with every property past the 25-reference cap read in full
    (``pages.properties.retrieve``, paginated)."""
    fixed: dict[str, Any] = {}
    for name, value in page.properties.items():
        if value and T.truncated(value) and value.get("id"):
            typ, items = notion.property_items(page.id, str(value["id"]))
            fixed[name] = {**value, typ: items, "has_more": False}
    if not fixed:
        return page
    return dataclasses.replace(page, properties={**page.properties, **fixed})


def read_page(
    notion: NotionResource | None, schema: ResolvedSchema | None, page: NotionPage
) -> NotionPage:
    """The page completed past the reference cap and keyed by canonical property names."""
    if notion is not None:
        page = complete(notion, page)
    if schema is None:
        return page
    props = T.canonical_properties(page.properties, schema.canonical_by_id)
    return dataclasses.replace(page, properties=props)


def missing_properties(schema: ResolvedSchema | None, page: NotionPage, kind: Kind) -> list[str]:
    """Required properties the (canonical) page lacks: never read as empty (that would write
    NULL over good values)."""
    if schema is None:
        return []
    required, _ = EXPECTED[kind]
    return [c for c in required if c in schema.properties and c not in page.properties]
