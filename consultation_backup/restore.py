"""Restore Notion from the backup **as of a point in time**: the state the backup had observed
then (its history versions), for one page, one customer with their consultations, or the whole
database, including pages trashed or deleted in Notion since.

Per backed-up entity valid at ``as_of`` (and not deleted then) the page in Notion is:

- live and equal: nothing to do (``present``);
- in Notion's trash: restored from the trash (``in_trash: false``, same page id);
- gone (404, purged or unshared): recreated; the backup's ``notion_page_id`` (and, for a
  customer, the consultations' relation) is re-pointed to the new page in one transaction, the
  old id staying in history;
- live but different: overwritten only with ``overwrite`` (else listed in
  ``needs_overwrite``); the state being overwritten is first written as a version;
- a consultation whose content matches but whose customer relation points elsewhere (its
  customer was recreated) gets its relation re-pointed.

Dry run by default. Every restored entity's backup row is brought to the restored state in the
same transaction as its re-pointing, so the next sync sees nothing to change. Restoring into
other databases (``relink=False``) matches pages by customer / consultation id and only
creates what is missing (idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from psycopg.types.json import Jsonb

from consultation_backup import transform as T
from consultation_backup.constants import BUCKET
from consultation_backup.history import image_copies_as_of, tag_run
from consultation_backup.notion_schema import pinned_schema
from consultation_backup.records import upsert_records
from consultation_backup.restore_plan import (
    CHANGES,
    Action,
    Entity,
    Kind,
    RestoreRun,
    RestoreScope,
    by_title,
    current_rows,
    decide,
    hosted_copies,
    notion_page,
    prefetch,
    relation,
    scoped_versions,
)
from consultation_backup.restore_properties import (
    TextTooLong,
    consultation_properties,
    customer_properties,
)
from consultation_backup.writes import CUSTOMERS, Tally, WriteScope, write_rows
from resources.notion import NotionPage, NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

# the backup columns a restore writes back from the version (the rest is bookkeeping)
CUSTOMER_COLUMNS = (
    "name",
    "phone",
    "gender",
    "birth_date",
    "estimated_age",
    "address",
    "special_note",
    "face_embedding",
    "google_drive_folder_id",
)
RECORD_COLUMNS = (
    "consultation_date",
    "symptoms",
    "patient_condition",
    "tongue_analysis",
    "special_note",
    "prescription",
    "result",
    "image_count",
    "google_drive_urls",
)
JSON_COLUMNS = frozenset({"face_embedding", "google_drive_urls"})


@dataclass(frozen=True)
class RestoreReport:
    """What a restore found and did. ``planned`` lists the changes (done, unless dry run);
    ``needs_overwrite`` the pages that differ and were left alone without ``overwrite``."""

    dry_run: bool
    as_of: str = ""
    overwrite: bool = False
    customers_in_backup: int = 0
    customers_present: int = 0
    customers_created: int = 0
    customers_untrashed: int = 0
    customers_overwritten: int = 0
    consultations_in_backup: int = 0
    consultations_present: int = 0
    consultations_created: int = 0
    consultations_untrashed: int = 0
    consultations_overwritten: int = 0
    consultations_relinked: int = 0
    notion_requests: int = 0
    planned: list[str] = field(default_factory=list)
    needs_overwrite: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # where the stored copy of each image of the restored consultations, as of then, is
    images: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- applying ----------------------------------------------------------------------------------
def _capture(run: RestoreRun, entity: Entity, page: NotionPage) -> None:
    """Keep the state about to be overwritten as a version (a no-op when the backup already
    has it: unchanged rows are not written)."""
    with run.db.transaction() as conn:
        scope = WriteScope(conn, "notion_wins", run.run_id, Tally())
        try:
            if entity == "customer":
                write_rows(scope, CUSTOMERS, [T.parse_customer(page).as_dict()], {page.id: page})
            else:
                upsert_records(None, scope, [T.parse_consultation(page)], {page.id: page})
        except T.InvalidPage:
            return  # an invalid page is in the quarantine with its payload already


def _write_back(run: RestoreRun, entity: Entity, version: dict[str, Any], page: NotionPage) -> None:
    """The backup row becomes the restored state, pointing at ``page``; a recreated customer's
    consultations are re-pointed in the same transaction."""
    columns = CUSTOMER_COLUMNS if entity == "customer" else RECORD_COLUMNS
    table = "consultation_customers" if entity == "customer" else "consultation_records"
    values = [
        Jsonb(version.get(c))
        if c in JSON_COLUMNS and version.get(c) is not None
        else version.get(c)
        for c in columns
    ]
    sets = ", ".join(f"{c} = %s" for c in columns)
    extra, params = "", []
    if entity == "consultation":
        extra, params = ", customer_notion_id = %s", [relation(page)[0]]
    with run.db.transaction() as conn:
        tag_run(conn, run.run_id)
        conn.execute(
            f"UPDATE public.{table} SET {sets}{extra}, notion_page_id = %s, is_deleted = false,"
            " notion_updated_at = %s, sync_status = 'synced', synced_at = now() WHERE id = %s",
            [*values, *params, page.id, T.parse_timestamp(page.last_edited_time), version["id"]],
        )
        if entity == "customer":
            conn.execute(
                "UPDATE public.consultation_records SET customer_notion_id = %s,"
                " synced_at = now() WHERE customer_id = %s AND customer_notion_id <> %s",
                (page.id, version["id"], page.id),
            )


def _properties(entity: Entity, version: dict[str, Any], target: str) -> dict[str, Any]:
    if entity == "customer":
        return customer_properties(version)
    return consultation_properties(version, target)


def _writes_properties(action: Action) -> bool:
    """Whether carrying out ``action`` writes the page's properties (not only its relation or
    its trash state)."""
    return action.kind in ("create", "overwrite") or (
        action.kind == "untrash" and bool(action.fields)
    )


def _hosted_in(version: dict[str, Any]) -> list[str]:
    """The Notion-hosted file identities among a consultation version's images."""
    urls = version.get("google_drive_urls") or []
    return [str(u) for u in urls if T.parse_notion_file_ref(str(u)) is not None]


def _unrestorable_file(run: RestoreRun, version: dict[str, Any]) -> str | None:
    """Why a Notion-hosted file of the version cannot be uploaded again (None: all can)."""
    for identity in _hosted_in(version):
        name = (T.parse_notion_file_ref(identity) or ("", "", 0, ""))[3]
        copy = run.hosted.get(identity)
        if copy is None or not copy.path:
            return f"Notion-hosted file {name!r}: the backup holds no copy of it as of then"
        if run.storage is None or not run.storage.available:
            return f"Notion-hosted file {name!r}: Supabase Storage is needed to upload it again"
    return None


def _upload_hosted(run: RestoreRun, props: dict[str, Any]) -> None:
    """Notion-hosted files cannot be written as links (their identity is no URL and their
    signed URLs expire): each one's backed-up bytes are uploaded again through Notion's file
    upload API (``file_uploads.create`` + ``send``, single part) and attached as
    ``file_upload``, as Notion documents."""
    assert run.storage is not None
    client = run.notion.get_client()
    for n, f in enumerate(props["증상이미지"]["files"], start=1):
        identity = (f.get("external") or {}).get("url", "")
        ref = T.parse_notion_file_ref(identity)
        if ref is None:
            continue
        copy = run.hosted[identity]
        assert copy.path is not None
        data = run.storage.download(BUCKET, copy.path)
        name = ref[3] or f"image_{n}"
        ctype = copy.content_type or "application/octet-stream"
        upload = cast(
            dict[str, Any],
            run.notion.caller.call(
                client.file_uploads.create, mode="single_part", filename=name, content_type=ctype
            ),
        )
        run.notion.caller.call(
            client.file_uploads.send, file_upload_id=upload["id"], file=(name, data, ctype)
        )
        f.clear()
        f.update({"name": name, "type": "file_upload", "file_upload": {"id": upload["id"]}})


def _apply(
    run: RestoreRun, action: Action, version: dict[str, Any], target: str, seen: NotionPage | None
) -> str | None:
    """Carry out ``action`` (``seen``: the page as read when deciding); returns the page id the
    entity lives at afterwards."""
    entity = action.entity
    props = _properties(entity, version, target)
    hosted = entity == "consultation" and _writes_properties(action) and bool(_hosted_in(version))
    if hosted:
        _upload_hosted(run, props)
    ds = run.customers_ds if entity == "customer" else run.consultations_ds
    relation_only = run.keyed(ds, {"고객": props["고객"]}) if entity == "consultation" else {}
    props = run.keyed(ds, props)
    if action.kind == "create":
        page = run.notion.create_page(ds, props)
    elif action.kind == "untrash":
        page = run.notion.update_page(
            str(action.page_id), properties=props if action.fields else None, in_trash=False
        )
    elif action.kind == "overwrite":
        if seen is not None:
            _capture(run, entity, seen)
        page = run.notion.update_page(str(action.page_id), properties=props)
    elif action.kind == "relink":
        page = run.notion.update_page(str(action.page_id), properties=relation_only)
    else:
        return action.page_id
    run.log(f"restored {action.describe()} -> page {page.id}")
    if run.relink:
        # the page Notion returns is keyed by today's (maybe renamed) names: read it by id
        page = run.canonical(ds, page) or page
        if hosted:
            # uploaded files carry the page's identities now (a recreated page: its new id)
            version = {**version, "google_drive_urls": T.file_urls(page, "증상이미지")}
        _write_back(run, entity, version, page)
    return page.id


def _restore_one(
    run: RestoreRun, entity: Entity, version: dict[str, Any], current: dict[str, Any] | None
) -> None:
    row = version["row_data"]
    bid = str(version["business_id"])
    if row.get("is_deleted"):
        run.actions.append(Action(entity, bid, "skip", reason="deleted at that time"))
        return
    target = ""
    if entity == "consultation":
        target = run.page_of.get(str(row["customer_id"])) or ""
        if not target:
            reason = "its customer's page is not live in Notion (restore the customer too)"
            run.actions.append(Action(entity, bid, "skip", reason=reason))
            return
    ds = run.customers_ds if entity == "customer" else run.consultations_ds
    page_id = str((current or row)["notion_page_id"])
    page = notion_page(run, ds, page_id, bid)
    action = decide(run, entity, page, row, target)
    run.actions.append(action)
    new_page = action.page_id
    if run.relink and not run.dry_run and action.kind == "present" and new_page != page_id:
        # found again by its id title (recreated by hand): the backup follows that page
        assert page is not None
        _write_back(run, entity, row, page)
    if action.kind in CHANGES:
        try:  # a value Notion cannot take is found in a dry run too
            _properties(entity, row, target)
        except TextTooLong as exc:
            run.actions[-1] = Action(entity, bid, "skip", action.page_id, reason=str(exc))
            return
        why = _unrestorable_file(run, row) if entity == "consultation" else None
        if why and _writes_properties(action):
            run.actions[-1] = Action(entity, bid, "skip", action.page_id, reason=why)
            return
        if not run.dry_run:
            new_page = _apply(run, action, row, target, page)
    if entity == "customer":
        live = _live_after(run, action, new_page)
        if live:
            run.page_of[str(row["id"])] = live


def _live_after(run: RestoreRun, action: Action, new_page: str | None) -> str | None:
    """The customer's live page once the action is done (a placeholder in a dry run)."""
    if action.kind in CHANGES:
        return new_page if not run.dry_run else action.page_id or "(new page)"
    if action.kind == "present" or (action.kind == "differs" and action.reason is None):
        return action.page_id
    return None


def _customer_pages_for(run: RestoreRun, records: list[dict[str, Any]]) -> None:
    """Pages of the customers of consultations restored without their customer: the customer's
    current page when it is live."""
    wanted = {str(r["row_data"]["customer_id"]) for r in records} - set(run.page_of)
    for row in current_rows(run.db, "consultation_customers", wanted).values():
        if run.relink:
            page = notion_page(run, run.customers_ds, row["notion_page_id"], row["customer_id"])
            if page is None or page.in_trash:
                continue
        else:
            page = by_title(run, run.customers_ds, row["customer_id"])
            if page is None:
                continue
        run.page_of[str(row["id"])] = page.id


def _count(actions: list[Action], entity: Entity, *kinds: Kind) -> int:
    return sum(1 for a in actions if a.entity == entity and a.kind in kinds)


def _report(
    run: RestoreRun, at: datetime, requests: int, backed: tuple[int, int], images: list[str]
) -> RestoreReport:
    acts, done = run.actions, not run.dry_run
    return RestoreReport(
        dry_run=run.dry_run,
        as_of=at.isoformat(),
        overwrite=run.overwrite,
        customers_in_backup=backed[0],
        customers_present=_count(acts, "customer", "present"),
        customers_created=_count(acts, "customer", "create") if done else 0,
        customers_untrashed=_count(acts, "customer", "untrash") if done else 0,
        customers_overwritten=_count(acts, "customer", "overwrite") if done else 0,
        consultations_in_backup=backed[1],
        consultations_present=_count(acts, "consultation", "present"),
        consultations_created=_count(acts, "consultation", "create") if done else 0,
        consultations_untrashed=_count(acts, "consultation", "untrash") if done else 0,
        consultations_overwritten=_count(acts, "consultation", "overwrite") if done else 0,
        consultations_relinked=_count(acts, "consultation", "relink") if done else 0,
        notion_requests=requests,
        planned=[a.describe() for a in acts if a.kind in CHANGES],
        needs_overwrite=[a.describe() for a in acts if a.kind == "differs"],
        skipped=[a.describe() for a in acts if a.kind == "skip"],
        images=images,
    )


def restore(
    notion: NotionResource,
    db: PostgresResource,
    *,
    customers_database_id: str,
    consultations_database_id: str,
    as_of: datetime | None = None,
    dry_run: bool = True,
    overwrite: bool = False,
    customer_ids: list[str] | None = None,
    consultation_ids: list[str] | None = None,
    page_ids: list[str] | None = None,
    relink: bool = True,
    run_id: str | None = None,
    log: Callable[[str], None] = print,
    storage: SupabaseStorageResource | None = None,
) -> RestoreReport:
    """Restore Notion to the state the backup had observed at ``as_of`` (default: now).

    Args:
        as_of: the point in time (aware datetime).
        dry_run: only report what would change (``planned``, ``needs_overwrite``).
        overwrite: also overwrite pages that exist but differ (their state is kept as a
            version first).
        customer_ids: these customers with all their consultations; ``consultation_ids`` and
            ``page_ids`` single pages. None of the three: the whole database.
        relink: restoring into the live databases (page ids followed, trash and re-pointing);
            False restores into other databases, matching pages by id title.
        storage: where Notion-hosted files are uploaded again from (their backed-up bytes);
            without it a page that needs one is skipped with the reason.
    """
    at = as_of or datetime.now(UTC)
    before = notion.caller.stats["requests"]
    run = RestoreRun(
        notion,
        db,
        notion.data_source_id(customers_database_id),
        notion.data_source_id(consultations_database_id),
        dry_run,
        overwrite,
        relink,
        run_id or f"restore:{datetime.now(UTC).isoformat()}",
        log,
    )
    for ds, kind, database_id in (
        (run.customers_ds, "customers", customers_database_id),
        (run.consultations_ds, "consultations", consultations_database_id),
    ):
        schema = pinned_schema(db, kind)  # type: ignore[arg-type]
        run.schemas[ds] = schema if schema and schema.database_id == database_id else None
    scope = RestoreScope(
        tuple(customer_ids or ()), tuple(consultation_ids or ()), tuple(page_ids or ())
    )
    customers, records = scoped_versions(db, scope, at)
    run.storage = storage
    run.hosted = hosted_copies(db, [str(v["business_id"]) for v in records], at)
    if scope.whole and relink:
        prefetch(run)
    current = current_rows(db, "consultation_customers", [v["entity_key"] for v in customers])
    for version in customers:
        _restore_one(run, "customer", version, current.get(version["entity_key"]))
    _customer_pages_for(run, records)
    current = current_rows(db, "consultation_records", [v["entity_key"] for v in records])
    for version in records:
        _restore_one(run, "consultation", version, current.get(version["entity_key"]))
    images = image_copies_as_of(db, [str(v["business_id"]) for v in records], at)
    report = _report(
        run, at, notion.caller.stats["requests"] - before, (len(customers), len(records)), images
    )
    log(
        f"restore as of {report.as_of} {'(dry run) ' if dry_run else ''}: "
        f"{len(report.planned)} change(s) {'planned' if dry_run else 'made'}, "
        f"{len(report.needs_overwrite)} differing page(s) left alone, "
        f"{len(report.skipped)} skipped"
    )
    return report
