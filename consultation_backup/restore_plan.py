"""Planning a restore: which versions the backup had at a point in time, what Notion has now,
and the action each entity needs (see ``restore`` for the rules)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from consultation_backup import transform as T
from consultation_backup.history import versions_as_of
from consultation_backup.models import CustomerRow, RecordRow, ResolvedSchema
from resources.notion import NotionPage, NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

Entity = Literal["customer", "consultation"]
Kind = Literal["present", "create", "untrash", "overwrite", "relink", "differs", "skip"]
CUSTOMER_FIELDS = tuple(f for f in CustomerRow.CONTENT_FIELDS if f != "is_deleted")
RECORD_FIELDS = tuple(f for f in RecordRow.CONTENT_FIELDS if f != "customer_notion_id")
CHANGES: tuple[Kind, ...] = ("create", "untrash", "overwrite", "relink")


@dataclass(frozen=True)
class HostedCopy:
    """The backed-up copy of a Notion-hosted file as of the restore's time."""

    path: str | None  # in the bucket (its seed path while current, else under versions/)
    content_type: str | None


@dataclass(frozen=True)
class RestoreScope:
    """What to restore: nothing set means the whole database."""

    customer_ids: tuple[str, ...] = ()  # customers with all their consultations
    consultation_ids: tuple[str, ...] = ()  # single consultation pages
    page_ids: tuple[str, ...] = ()  # single pages by Notion id (current or former)

    @property
    def whole(self) -> bool:
        return not (self.customer_ids or self.consultation_ids or self.page_ids)


@dataclass(frozen=True)
class Action:
    """What restoring one entity does (or, in a dry run, would do)."""

    entity: Entity
    business_id: str
    kind: Kind
    page_id: str | None = None
    fields: tuple[str, ...] = ()
    reason: str | None = None

    def describe(self) -> str:
        text = f"{self.entity} {self.business_id}: {self.kind}"
        if self.fields:
            text += f" ({', '.join(self.fields)})"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass
class RestoreRun:
    """Where and how to restore, and what happened so far."""

    notion: NotionResource
    db: PostgresResource
    customers_ds: str
    consultations_ds: str
    dry_run: bool
    overwrite: bool
    relink: bool
    run_id: str
    log: Callable[[str], None]
    actions: list[Action] = field(default_factory=list)
    page_of: dict[str, str] = field(default_factory=dict)  # customer row id -> live page id
    live: dict[str, NotionPage] | None = None  # whole-database restores: prefetched pages
    trash: dict[str, NotionPage] | None = None
    titles: dict[str, dict[str, NotionPage]] = field(default_factory=dict)
    # the live databases' properties pinned by id (renames followed); None: names as they are
    schemas: dict[str, ResolvedSchema | None] = field(default_factory=dict)
    # Notion-hosted files: where Supabase Storage holds each identity's bytes as of then
    storage: SupabaseStorageResource | None = None
    hosted: dict[str, HostedCopy] = field(default_factory=dict)

    def schema_of(self, ds: str) -> ResolvedSchema | None:
        return self.schemas.get(ds) if self.relink else None

    def canonical(self, ds: str, page: NotionPage | None) -> NotionPage | None:
        """The page keyed by the seed's property names (found by pinned id)."""
        schema = self.schema_of(ds)
        if page is None or schema is None:
            return page
        props = T.canonical_properties(page.properties, schema.canonical_by_id)
        return dataclasses.replace(page, properties=props)

    def keyed(self, ds: str, props: dict[str, Any]) -> dict[str, Any]:
        """Write properties keyed by their pinned id (Notion accepts ids for names)."""
        schema = self.schema_of(ds)
        return props if schema is None else {schema.id_of(k): v for k, v in props.items()}


# -- what the backup had at as_of --------------------------------------------------------------
def scoped_versions(
    db: PostgresResource, scope: RestoreScope, at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The customer and consultation versions valid at ``at`` that the scope selects."""
    if scope.whole:
        return versions_as_of(db, "customer", at), versions_as_of(db, "consultation", at)
    pages = list(scope.page_ids)
    customers = versions_as_of(
        db,
        "customer",
        at,
        "(business_id = ANY(%(c)s) OR entity_key IN (SELECT entity_key FROM"
        " public.consultation_customers_history WHERE notion_page_id = ANY(%(p)s)))",
        c=list(scope.customer_ids),
        p=pages,
    )
    whole_customers = [v["entity_key"] for v in customers if v["business_id"] in scope.customer_ids]
    records = versions_as_of(
        db,
        "consultation",
        at,
        "(parent_key = ANY(%(k)s) OR business_id = ANY(%(r)s) OR entity_key IN (SELECT"
        " entity_key FROM public.consultation_records_history WHERE notion_page_id = ANY(%(p)s)))",
        k=whole_customers,
        r=list(scope.consultation_ids),
        p=pages,
    )
    return customers, records


def current_rows(db: PostgresResource, table: str, keys: Iterable[str]) -> dict[str, Any]:
    rows = db.fetch_all(f"SELECT * FROM public.{table} WHERE id::text = ANY(%s)", (list(keys),))
    return {str(r["id"]): r for r in rows}


# -- what Notion has now -----------------------------------------------------------------------
def prefetch(run: RestoreRun) -> None:
    """Whole-database restores read every page once (live and trashed) instead of one request
    per page."""
    run.live, run.trash = {}, {}
    for ds in (run.customers_ds, run.consultations_ds):
        for into, trashed in ((run.live, False), (run.trash, True)):
            for page in run.notion.iter_pages(ds, in_trash=trashed):
                into[page.id] = run.canonical(ds, page) or page


def by_title(run: RestoreRun, ds: str, business_id: str) -> NotionPage | None:
    """A live page of ``ds`` titled ``business_id`` (restores into other databases index the
    whole data source once; the live databases ask with one filtered query)."""
    if not run.relink:
        if ds not in run.titles:
            run.titles[ds] = {}
            for page in run.notion.iter_pages(ds):
                run.titles[ds].setdefault(T.text(page, "id"), page)
        return run.titles[ds].get(business_id)
    schema = run.schema_of(ds)
    flt = {"property": schema.id_of("id") if schema else "id", "title": {"equals": business_id}}
    return run.canonical(ds, next(iter(run.notion.iter_pages(ds, filter=flt)), None))


def notion_page(run: RestoreRun, ds: str, page_id: str, business_id: str) -> NotionPage | None:
    """The page now (live or trashed), else a live page with the same id title, else None."""
    if not run.relink:
        return by_title(run, ds, business_id)
    if run.live is not None and run.trash is not None:
        page = run.live.get(page_id) or run.trash.get(page_id)
    else:
        page = run.canonical(ds, run.notion.retrieve_page(page_id))
    return page if page is not None else by_title(run, ds, business_id)


def hosted_copies(
    db: PostgresResource, consultation_ids: list[str], at: datetime
) -> dict[str, HostedCopy]:
    """Per Notion-hosted file identity of these consultations: where the bucket holds the
    bytes the backup had at ``at`` (from the image versions valid then)."""
    out: dict[str, HostedCopy] = {}
    for v in versions_as_of(db, "image", at, "business_id = ANY(%(c)s)", c=consultation_ids):
        row = v["row_data"]
        identity = str(row.get("drive_file_id") or "")
        if T.parse_notion_file_ref(identity) is None:
            continue
        path = row.get("storage_path") if v["valid_to"] is None else v["version_path"]
        out[identity] = HostedCopy(path, row.get("content_type"))
    return out


def _same_file(url: str) -> str:
    """A Notion-hosted file's identity without its page id: a page recreated by a restore
    carries the same file (same property, position and name) under its new id."""
    ref = T.parse_notion_file_ref(url)
    return url if ref is None else T.notion_file_ref("*", *ref[1:])


def differences(entity: Entity, page: NotionPage, version: dict[str, Any]) -> list[str]:
    """Content fields in which the page differs from the version."""
    try:
        if entity == "customer":
            return T.differing_fields(T.parse_customer(page).as_dict(), version, CUSTOMER_FIELDS)
        current = T.parse_consultation(page).as_dict()
        urls = version.get("google_drive_urls")
        if isinstance(urls, list) and isinstance(current.get("google_drive_urls"), list):
            current["google_drive_urls"] = [_same_file(u) for u in current["google_drive_urls"]]
            version = {**version, "google_drive_urls": [_same_file(str(u)) for u in urls]}
        return T.differing_fields(current, version, RECORD_FIELDS)
    except T.InvalidPage as exc:
        return [f"invalid page: {exc.reason}"]


def relation(page: NotionPage) -> list[str]:
    return T.relation_ids(page, "고객")


# -- deciding ----------------------------------------------------------------------------------
def decide(
    run: RestoreRun, entity: Entity, page: NotionPage | None, version: dict[str, Any], target: str
) -> Action:
    """The action for one entity (``target``: the customer page a consultation must point at)."""
    bid = version["customer_id" if entity == "customer" else "consultation_id"]
    if page is None:
        return Action(entity, bid, "create")
    if not run.relink:
        return Action(entity, bid, "present", page.id)
    diff = tuple(differences(entity, page, version))
    repoint = entity == "consultation" and relation(page) != [target]
    if page.in_trash:
        if diff and not run.overwrite:
            return Action(entity, bid, "differs", page.id, diff, "in Notion's trash")
        return Action(entity, bid, "untrash", page.id, diff)
    if diff:
        kind: Kind = "overwrite" if run.overwrite else "differs"
        return Action(entity, bid, kind, page.id, diff)
    if repoint:
        return Action(entity, bid, "relink", page.id, ("고객",))
    return Action(entity, bid, "present", page.id)
