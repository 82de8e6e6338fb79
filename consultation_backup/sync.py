"""The backup's mechanics, written once and called by the assets, jobs, CLI and benchmark:
read Notion / Drive through the resources, transform with ``transform``, write Supabase in
transactions that also carry the quarantine entries and the watermark.

Delivery: at-least-once reads, idempotent writes (upsert on ``notion_page_id``), the watermark
advanced only in the transaction that commits the last batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from consultation_backup import transform as T
from consultation_backup.constants import (
    BUCKET,
    BUCKET_FILE_SIZE_LIMIT,
    BUCKET_MIME_TYPES,
    CUSTOMERS_CURSOR,
    DOMAIN,
    OVERLAP_MINUTES,
    SOURCE_CONSULTATIONS,
    SOURCE_CUSTOMERS,
    SOURCE_IMAGES,
)
from consultation_backup.models import CustomerRow, RecordRow, Rejected, SyncOutcome
from resources.errors import PermanentError
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource, QueryStats
from resources.postgres import PostgresResource
from resources.state import get_cursor, quarantine, resolve_quarantine, set_cursor
from resources.supabase_storage import SupabaseStorageResource

BATCH = 500

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


# -- sync log ---------------------------------------------------------------------------------
class SyncLog:
    """One ``consultation_sync_logs`` row per run: ``started`` at once (committed, so a crash
    leaves a trace), then ``completed`` / ``partial`` / ``failed`` with totals and details."""

    def __init__(self, db: PostgresResource, sync_type: str, details: dict[str, Any] | None = None):
        self.db = db
        self.started = time.perf_counter()
        self.id = db.fetch_value(
            "INSERT INTO public.consultation_sync_logs (sync_type, status, details) VALUES (%s, 'started', %s) RETURNING id",
            (sync_type, Jsonb(details or {})),
        )

    def finish(
        self,
        outcome: SyncOutcome | None,
        error: BaseException | None = None,
        status: str | None = None,
        message: str | None = None,
    ) -> None:
        outcome = outcome or SyncOutcome()
        final = status or ("failed" if error is not None else outcome.status)
        text = message or (f"{type(error).__name__}: {error}"[:2000] if error is not None else None)
        if text is None and outcome.failures:
            text = f"{outcome.failed} item(s) quarantined; first: {outcome.failures[0].reason}"
        self.db.execute(
            """UPDATE public.consultation_sync_logs
                  SET status = %s, total_records = %s, synced_records = %s, failed_records = %s, error_message = %s,
                      details = coalesce(details, '{}'::jsonb) || %s, completed_at = now(), duration_seconds = %s
                WHERE id = %s""",
            (
                final,
                outcome.total,
                outcome.synced,
                outcome.failed,
                text,
                Jsonb(T.normalize(outcome.details())),
                int(round(time.perf_counter() - self.started)),
                self.id,
            ),
        )


# -- helpers ------------------------------------------------------------------------------------
def _batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _existing(
    conn: psycopg.Connection, table: str, page_ids: list[str]
) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT *, (updated_at > synced_at) AS locally_edited FROM public.{table}"
            " WHERE notion_page_id = ANY(%s)",
            (page_ids,),
        )
        return {r["notion_page_id"]: r for r in cur.fetchall()}


def _record_conflict(
    conn: psycopg.Connection,
    entity: str,
    business_id: str,
    strategy: str,
    notion_version: dict[str, Any],
    existing: dict[str, Any],
    fields: list[str],
    run_id: str | None,
) -> None:
    supa = {k: v for k, v in existing.items() if k not in ("locally_edited",)}
    conn.execute(
        """INSERT INTO public.consultation_sync_conflicts
             (entity, notion_page_id, business_id, strategy, notion_version, supabase_version, differing_fields,
              notion_updated_at, supabase_updated_at, run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (entity, notion_page_id) WHERE status = 'open' DO UPDATE
             SET notion_version = EXCLUDED.notion_version, supabase_version = EXCLUDED.supabase_version,
                 differing_fields = EXCLUDED.differing_fields, notion_updated_at = EXCLUDED.notion_updated_at,
                 supabase_updated_at = EXCLUDED.supabase_updated_at, run_id = EXCLUDED.run_id, detected_at = now()""",
        (
            entity,
            existing["notion_page_id"],
            business_id,
            strategy,
            Jsonb(T.normalize(notion_version)),
            Jsonb(T.normalize(supa)),
            fields,
            notion_version.get("notion_updated_at"),
            existing.get("updated_at"),
            run_id,
        ),
    )
    table = "consultation_customers" if entity == "customer" else "consultation_records"
    # the Supabase version stays; 'pending' until someone resolves it (this also keeps it "locally edited")
    conn.execute(
        f"UPDATE public.{table} SET sync_status = 'pending' WHERE notion_page_id = %s",
        (existing["notion_page_id"],),
    )


def _decide(
    rows: list[Any],
    existing: dict[str, dict[str, Any]],
    fields: tuple[str, ...],
    strategy: str,
    entity: str,
    conn: psycopg.Connection,
    run_id: str | None,
    outcome: SyncOutcome,
    key: str,
) -> list[Any]:
    """Rows to write after skipping unchanged ones and applying the conflict strategy."""
    out = []
    for row in rows:
        values = row.as_dict() if hasattr(row, "as_dict") else row
        old = existing.get(values["notion_page_id"])
        if old is None:
            out.append(row)
            continue
        diff = T.differing_fields(values, old, fields)
        bookkeeping = (
            T.differing_fields(
                values, old, ("notion_updated_at", "consultation_count", "customer_id")
            )
            if entity == "customer"
            else T.differing_fields(values, old, ("notion_updated_at", "customer_id"))
        )
        revived = bool(old.get("is_deleted")) and not values.get("is_deleted", True)
        if not diff and not bookkeeping and not revived and old.get("sync_status") == "synced":
            outcome.skipped += 1
            continue
        decision = T.decide_conflict(
            strategy,
            locally_edited=bool(old["locally_edited"]),
            differs=bool(diff),
            notion_updated_at=values["notion_updated_at"],
            supabase_updated_at=old.get("updated_at"),
        )
        if decision == "apply":
            out.append(row)
        elif decision == "keep":
            outcome.skipped += 1
            outcome.extra.setdefault("kept_supabase_version", []).append(values[key])
        else:
            outcome.conflicts += 1
            _record_conflict(conn, entity, values[key], strategy, values, old, diff, run_id)
    return out


def _upsert(
    conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> int:
    if not rows:
        return 0
    cols = ", ".join(columns)
    placeholders = ", ".join(["%s"] * len(columns))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "notion_page_id")
    stmt = (
        f"INSERT INTO public.{table} ({cols}) VALUES ({placeholders}) ON CONFLICT (notion_page_id) DO UPDATE SET "
        f"{updates}, synced_at = now(), sync_status = 'synced'"
    )
    jsonish = {"face_embedding", "google_drive_urls"}
    params = [
        tuple(Jsonb(r[c]) if c in jsonish and r[c] is not None else r[c] for c in columns)
        for r in rows
    ]
    with conn.cursor() as cur:
        cur.executemany(stmt, params)
    return len(rows)


def _reject(
    conn: psycopg.Connection,
    outcome: SyncOutcome,
    source: str,
    rejected: Rejected,
    payload: Any,
    run_id: str | None,
) -> None:
    outcome.failures.append(rejected)
    quarantine(
        conn,
        domain=DOMAIN,
        source=source,
        item_id=rejected.item_id,
        reason=rejected.reason,
        payload=T.strip_nul({"id": rejected.business_id, "page": payload}),
        run_id=run_id,
    )


# -- customers --------------------------------------------------------------------------------
def upsert_customers(
    conn: psycopg.Connection,
    rows: list[CustomerRow],
    pages: dict[str, Any],
    strategy: str,
    run_id: str | None,
    outcome: SyncOutcome,
) -> None:
    """Write a batch of customer rows on ``conn`` (conflicts, duplicate ids and quarantine included)."""
    existing = _existing(conn, "consultation_customers", [r.notion_page_id for r in rows])
    to_write = _decide(
        rows,
        existing,
        CustomerRow.CONTENT_FIELDS,
        strategy,
        "customer",
        conn,
        run_id,
        outcome,
        "customer_id",
    )
    owners = dict(
        conn.execute(
            "SELECT customer_id, notion_page_id FROM public.consultation_customers"
            " WHERE customer_id = ANY(%s)",
            ([r.customer_id for r in to_write],),
        ).fetchall()
    )
    final, seen = [], {}
    for row in to_write:
        owner = owners.get(row.customer_id)
        if (owner is not None and owner != row.notion_page_id) or seen.get(
            row.customer_id, row.notion_page_id
        ) != row.notion_page_id:
            _reject(
                conn,
                outcome,
                SOURCE_CUSTOMERS,
                Rejected(
                    row.notion_page_id,
                    f"duplicate customer id {row.customer_id} (already backed up from page "
                    f"{owner or seen[row.customer_id]})",
                    row.customer_id,
                ),
                pages.get(row.notion_page_id),
                run_id,
            )
            continue
        seen[row.customer_id] = row.notion_page_id
        final.append(row.as_dict())
    outcome.synced += _upsert(conn, "consultation_customers", CUSTOMER_COLUMNS, final)
    for row in final:
        resolve_quarantine(
            conn, domain=DOMAIN, source=SOURCE_CUSTOMERS, item_id=row["notion_page_id"]
        )


def sync_customers(
    notion: NotionResource,
    db: PostgresResource,
    database_id: str,
    *,
    full: bool = False,
    strategy: str = "notion_wins",
    run_id: str | None = None,
) -> tuple[SyncOutcome, QueryStats]:
    """Incremental (or full) customer sync: pages edited since the watermark minus the overlap."""
    outcome, stats = SyncOutcome(), QueryStats()
    ds = notion.data_source_id(database_id)
    with db.transaction() as conn:
        watermark = get_cursor(conn, DOMAIN, CUSTOMERS_CURSOR)
    since = None if full else T.watermark_start(watermark, OVERLAP_MINUTES)
    flt = (
        {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": since}}
        if since
        else None
    )
    outcome.extra.update(mode="full" if since is None else "incremental", since=since)
    newest = watermark
    pages_iter = notion.iter_pages(ds, filter=flt, stats=stats)
    pending: list[dict[str, Any]] = []

    def flush(batch: list[dict[str, Any]], final: bool) -> None:
        nonlocal newest
        with db.transaction() as conn:
            rows, by_id = [], {}
            for page in batch:
                by_id[page["id"]] = page
                outcome.total += 1
                if newest is None or page["last_edited_time"] > newest:
                    newest = page["last_edited_time"]
                try:
                    rows.append(T.parse_customer(page))
                except T.InvalidPage as exc:
                    _reject(
                        conn,
                        outcome,
                        SOURCE_CUSTOMERS,
                        Rejected(page["id"], exc.reason, exc.business_id),
                        page,
                        run_id,
                    )
            if rows:
                upsert_customers(conn, rows, by_id, strategy, run_id, outcome)
            if final and trashed_ids:
                outcome.extra["soft_deleted"] = conn.execute(
                    "UPDATE public.consultation_customers SET is_deleted = true, synced_at = now()"
                    " WHERE notion_page_id = ANY(%s) AND NOT is_deleted",
                    (trashed_ids,),
                ).rowcount
            if final and newest:
                set_cursor(conn, DOMAIN, CUSTOMERS_CURSOR, newest)

    trashed_ids: list[str] = []
    for page in pages_iter:
        pending.append(page)
        if len(pending) >= BATCH:
            flush(pending, final=False)
            pending = []
    if since is not None:
        # trashed pages drop out of normal queries: one more query finds those trashed since the watermark
        for page in notion.iter_pages(ds, filter=flt, stats=stats, in_trash=True):
            trashed_ids.append(page["id"])
            if newest is None or page["last_edited_time"] > newest:
                newest = page["last_edited_time"]
    flush(pending, final=True)
    outcome.extra.update(
        watermark=newest, notion_requests=stats.requests, cap_splits=stats.cap_splits
    )
    return outcome, stats


# -- consultations ----------------------------------------------------------------------------
def _customer_map(conn: psycopg.Connection, page_ids: list[str]) -> dict[str, tuple[Any, str]]:
    rows = conn.execute(
        "SELECT notion_page_id, id, customer_id FROM public.consultation_customers"
        " WHERE notion_page_id = ANY(%s)",
        (page_ids,),
    ).fetchall()
    return {p: (i, c) for p, i, c in rows}


def _heal_customers(
    notion: NotionResource,
    conn: psycopg.Connection,
    missing: set[str],
    run_id: str | None,
    outcome: SyncOutcome,
) -> dict[str, str]:
    """Back up customers a consultation points at but the backup lacks (created after the last
    customer sync). Returns, for those that cannot be backed up, the reason."""
    rows, pages, reasons = [], {}, {}
    for page_id in sorted(missing):
        page = notion.retrieve_page(page_id)
        if page is None or page.get("in_trash"):
            reasons[page_id] = (
                f"customer page {page_id} is {'trashed' if page else 'not'} in Notion"
            )
            continue
        try:
            rows.append(T.parse_customer(page))
            pages[page_id] = page
        except T.InvalidPage as exc:
            reasons[page_id] = f"customer page {page_id} is quarantined ({exc.reason})"
    if rows:
        sub = SyncOutcome()
        upsert_customers(conn, rows, pages, "notion_wins", run_id, sub)
        outcome.extra["customers_healed"] = outcome.extra.get("customers_healed", 0) + sub.synced
        for f in sub.failures:
            reasons[f.item_id] = f"customer page {f.item_id} is quarantined ({f.reason})"
    return reasons


def upsert_records(
    notion: NotionResource | None,
    conn: psycopg.Connection,
    rows: list[RecordRow],
    pages: dict[str, Any],
    strategy: str,
    run_id: str | None,
    outcome: SyncOutcome,
) -> None:
    customers = _customer_map(conn, list({r.customer_notion_id for r in rows}))
    missing = {r.customer_notion_id for r in rows} - set(customers)
    reasons: dict[str, str] = {}
    if missing and notion is not None:
        reasons = _heal_customers(notion, conn, missing, run_id, outcome)
        customers = _customer_map(conn, list({r.customer_notion_id for r in rows}))
    resolved = []
    for row in rows:
        hit = customers.get(row.customer_notion_id)
        if hit is None:
            why = (
                reasons.get(row.customer_notion_id)
                or f"customer page {row.customer_notion_id} is not backed up"
            )
            _reject(
                conn,
                outcome,
                SOURCE_CONSULTATIONS,
                Rejected(row.notion_page_id, f"broken relation: {why}", row.consultation_id),
                pages.get(row.notion_page_id),
                run_id,
            )
            continue
        if not T.consultation_matches_customer(row.consultation_id, hit[1]):
            _reject(
                conn,
                outcome,
                SOURCE_CONSULTATIONS,
                Rejected(
                    row.notion_page_id,
                    f"consultation id {row.consultation_id} does not belong to customer {hit[1]}",
                    row.consultation_id,
                ),
                pages.get(row.notion_page_id),
                run_id,
            )
            continue
        resolved.append({**row.as_dict(), "customer_id": hit[0], "is_deleted": False})
    existing = _existing(conn, "consultation_records", [r["notion_page_id"] for r in resolved])
    to_write = _decide(
        resolved,
        existing,
        RecordRow.CONTENT_FIELDS,
        strategy,
        "consultation",
        conn,
        run_id,
        outcome,
        "consultation_id",
    )
    owners = dict(
        conn.execute(
            "SELECT consultation_id, notion_page_id FROM public.consultation_records"
            " WHERE consultation_id = ANY(%s)",
            ([r["consultation_id"] for r in to_write],),
        ).fetchall()
    )
    final, seen = [], {}
    for row in to_write:
        owner = owners.get(row["consultation_id"]) or seen.get(row["consultation_id"])
        if owner is not None and owner != row["notion_page_id"]:
            _reject(
                conn,
                outcome,
                SOURCE_CONSULTATIONS,
                Rejected(
                    row["notion_page_id"],
                    f"duplicate consultation id {row['consultation_id']} (already backed up from "
                    f"page {owner})",
                    row["consultation_id"],
                ),
                pages.get(row["notion_page_id"]),
                run_id,
            )
            continue
        seen[row["consultation_id"]] = row["notion_page_id"]
        final.append(row)
    outcome.synced += _upsert(conn, "consultation_records", RECORD_COLUMNS, final)
    for row in final:
        resolve_quarantine(
            conn, domain=DOMAIN, source=SOURCE_CONSULTATIONS, item_id=row["notion_page_id"]
        )


@dataclass
class WindowResult:
    outcome: SyncOutcome
    stats: QueryStats
    notion_ids: set[str]
    supabase_ids: set[str]
    soft_deleted: int

    @property
    def missing_in_supabase(self) -> set[str]:
        rejected = {f.item_id for f in self.outcome.failures}
        return self.notion_ids - self.supabase_ids - rejected

    @property
    def extra_in_supabase(self) -> set[str]:
        return self.supabase_ids - self.notion_ids


def sync_records(
    notion: NotionResource,
    db: PostgresResource,
    database_id: str,
    start: date,
    end: date,
    *,
    strategy: str = "notion_wins",
    run_id: str | None = None,
    edited_since: str | None = None,
    on_batch: Callable[[list[str]], None] | None = None,
) -> WindowResult:
    """Back up every consultation with 상담일자 in ``[start, end)`` (one windowed query, split past
    10,000 results), then soft-delete rows of the window whose page is trashed or gone.

    With ``edited_since`` (what the sensor passes) only pages edited on or after that time are
    read, and the trash sweep is skipped: a handful of requests for a handful of edits.
    """
    outcome, stats = SyncOutcome(), QueryStats()
    ds = notion.data_source_id(database_id)
    seen: set[str] = set()
    outcome.extra.update(window=f"{start.isoformat()}...{end.isoformat()}")

    def flush(batch: list[dict[str, Any]]) -> None:
        with db.transaction() as conn:
            rows, by_id = [], {}
            for page in batch:
                by_id[page["id"]] = page
                seen.add(page["id"])
                outcome.total += 1
                try:
                    rows.append(T.parse_consultation(page))
                except T.InvalidPage as exc:
                    _reject(
                        conn,
                        outcome,
                        SOURCE_CONSULTATIONS,
                        Rejected(page["id"], exc.reason, exc.business_id),
                        page,
                        run_id,
                    )
            if rows:
                upsert_records(notion, conn, rows, by_id, strategy, run_id, outcome)
        if on_batch is not None and batch:
            on_batch([T.text(p, "id") for p in batch])

    flt = T.date_window_filter(start, end)
    if edited_since:
        flt = {
            "and": [
                *flt["and"],
                {
                    "timestamp": "last_edited_time",
                    "last_edited_time": {"on_or_after": edited_since},
                },
            ]
        }
        outcome.extra["edited_since"] = edited_since
    for batch in _batches(notion.iter_pages(ds, filter=flt, stats=stats)):
        flush(batch)
    if edited_since:
        outcome.extra.update(notion_requests=stats.requests, cap_splits=stats.cap_splits)
        return WindowResult(outcome, stats, seen, seen - {f.item_id for f in outcome.failures}, 0)

    # rows of this window Notion no longer returned: trashed, purged, or moved to another date
    soft_deleted = 0
    with db.transaction() as conn:
        gone = [
            r[0]
            for r in conn.execute(
                "SELECT notion_page_id FROM public.consultation_records WHERE consultation_date >= %s AND consultation_date < %s"
                " AND NOT is_deleted AND notion_page_id <> ALL(%s)",
                (start, end, list(seen)),
            ).fetchall()
        ]
    for page_id in gone:
        page = notion.retrieve_page(page_id)
        with db.transaction() as conn:
            if page is None or page.get("in_trash"):
                soft_deleted += conn.execute(
                    "UPDATE public.consultation_records SET is_deleted = true, synced_at = now() WHERE notion_page_id = %s",
                    (page_id,),
                ).rowcount
            else:
                try:
                    upsert_records(
                        notion,
                        conn,
                        [T.parse_consultation(page)],
                        {page_id: page},
                        strategy,
                        run_id,
                        SyncOutcome(),
                    )
                except T.InvalidPage as exc:
                    _reject(
                        conn,
                        outcome,
                        SOURCE_CONSULTATIONS,
                        Rejected(page_id, exc.reason, exc.business_id),
                        page,
                        run_id,
                    )
    supabase_ids = {
        r["notion_page_id"]
        for r in db.fetch_all(
            "SELECT notion_page_id FROM public.consultation_records WHERE consultation_date >= %s AND consultation_date < %s"
            " AND NOT is_deleted",
            (start, end),
        )
    }
    outcome.extra.update(
        soft_deleted=soft_deleted, notion_requests=stats.requests, cap_splits=stats.cap_splits
    )
    return WindowResult(outcome, stats, seen, supabase_ids, soft_deleted)


# -- images -----------------------------------------------------------------------------------
@dataclass
class ImageJob:
    consultation_id: str
    customer_id: str
    index: int
    url: str
    stored: dict[str, Any] | None
    known_bad: dict[str, Any] | None = (
        None  # open quarantine entry of this image (drive md5 + reason)
    )


def _backup_one(
    drive: GoogleDriveResource, storage: SupabaseStorageResource, job: ImageJob
) -> dict[str, Any]:
    """Copy one image if it changed. Returns {"status": skipped|uploaded|rejected, ...}.

    An image never backed up is downloaded straight away (its md5 is computed from the bytes,
    which is what Drive's md5Checksum is); a known one is first compared by metadata, so an
    unchanged image costs one small request and no download.
    """
    fid = T.drive_file_id(job.url)
    if fid is None:
        return {
            "status": "rejected",
            "reason": f"not a Google Drive link: {job.url[:120]}",
            "item": job.url,
        }
    meta: dict[str, Any] = {}
    if job.stored is not None or job.known_bad is not None:
        meta = drive.file_metadata(fid) or {}
        if not meta:
            return {
                "status": "rejected",
                "reason": f"image missing in Google Drive (404): {fid}",
                "item": fid,
            }
        if T.image_unchanged(job.stored, meta):
            return {"status": "skipped", "path": job.stored["storage_path"]}
        bad = job.known_bad or {}
        if bad.get("md5") and bad.get("md5") == meta.get("md5Checksum"):
            # the same bytes were already found unusable: say so again without downloading them
            return {"status": "rejected", "reason": bad["reason"], "item": fid, "md5": bad["md5"]}
        size = int(meta.get("size") or 0)
        if size > BUCKET_FILE_SIZE_LIMIT:
            return {
                "status": "rejected",
                "reason": f"image too large: {size} bytes > {BUCKET_FILE_SIZE_LIMIT}",
                "item": fid,
                "md5": meta.get("md5Checksum"),
            }
    try:
        data = drive.download(fid, max_bytes=BUCKET_FILE_SIZE_LIMIT)
    except PermanentError as exc:
        if exc.status == 404:
            return {
                "status": "rejected",
                "reason": f"image missing in Google Drive (404): {fid}",
                "item": fid,
            }
        if exc.status == 413:
            return {
                "status": "rejected",
                "item": fid,
                "reason": f"image too large: {exc} (limit {BUCKET_FILE_SIZE_LIMIT})",
            }
        return {"status": "rejected", "reason": f"download failed: {exc}"[:300], "item": fid}
    md5 = hashlib.md5(data).hexdigest()
    sniffed = T.sniff_image(data)
    if sniffed is None:
        return {
            "status": "rejected",
            "item": fid,
            "md5": md5,
            "reason": f"not an image: content of {meta.get('name') or fid} is not JPEG/PNG/WebP",
        }
    mime, ext = sniffed
    path = T.storage_path(job.customer_id, job.consultation_id, job.index, ext)
    storage.upload(BUCKET, path, data, mime, upsert=True)
    old_path = (job.stored or {}).get("storage_path")
    if old_path and old_path != path:
        storage.remove(BUCKET, [old_path])
    modified = T.parse_timestamp(meta["modifiedTime"]) if meta.get("modifiedTime") else None
    return {
        "status": "uploaded",
        "path": path,
        "row": (
            job.consultation_id,
            job.index,
            fid,
            meta.get("md5Checksum") or md5,
            modified,
            path,
            mime,
            len(data),
        ),
    }


def sync_images(
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    db: PostgresResource,
    start: date,
    end: date,
    *,
    run_id: str | None = None,
    workers: int = 4,
    consultation_ids: list[str] | None = None,
    ensure_bucket: bool = True,
) -> SyncOutcome:
    """Copy the window's consultation images from Drive to the private bucket; unchanged ones
    (same md5 / modifiedTime as the stored copy) are not downloaded again.

    ``consultation_ids`` restricts the work to those consultations (the pipelined path calls it
    per committed batch of records)."""
    outcome = SyncOutcome()
    outcome.extra.update(window=f"{start.isoformat()}...{end.isoformat()}")
    if not storage.available:
        outcome.extra["skipped_reason"] = storage.unavailable_reason
        return outcome
    if ensure_bucket:
        storage.ensure_bucket(
            BUCKET,
            public=False,
            file_size_limit=BUCKET_FILE_SIZE_LIMIT,
            allowed_mime_types=BUCKET_MIME_TYPES,
        )
    only = "" if consultation_ids is None else " AND r.consultation_id = ANY(%s)"
    records = db.fetch_all(
        f"""SELECT r.consultation_id, r.notion_page_id, r.google_drive_urls, r.supabase_image_urls, c.customer_id
             FROM public.consultation_records r JOIN public.consultation_customers c ON c.id = r.customer_id
            WHERE r.consultation_date >= %s AND r.consultation_date < %s AND NOT r.is_deleted{only}
            ORDER BY r.consultation_id""",
        (start, end) if consultation_ids is None else (start, end, consultation_ids),
    )
    stored = {
        (r["consultation_id"], r["image_index"]): r
        for r in db.fetch_all(
            "SELECT * FROM public.consultation_image_objects WHERE consultation_id = ANY(%s)",
            ([r["consultation_id"] for r in records],),
        )
    }
    known_bad = {
        r["item_id"]: {"md5": (r["payload"] or {}).get("drive_md5"), "reason": r["reason"]}
        for r in db.fetch_all(
            "SELECT item_id, reason, payload FROM public.data_quarantine WHERE domain = %s AND source = %s"
            " AND resolved_at IS NULL",
            (DOMAIN, SOURCE_IMAGES),
        )
    }
    jobs = [
        ImageJob(
            r["consultation_id"],
            r["customer_id"],
            n,
            url,
            stored.get((r["consultation_id"], n)),
            known_bad.get(f"{r['consultation_id']}#{n}"),
        )
        for r in records
        for n, url in enumerate(r["google_drive_urls"] or [], start=1)
    ]
    outcome.total = len(jobs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda j: _backup_one(drive, storage, j), jobs))
    by_record: dict[str, dict[int, str]] = {}
    bytes_uploaded = 0
    with db.transaction() as conn:
        for job, res in zip(jobs, results, strict=True):
            if res["status"] == "rejected":
                outcome.failures.append(
                    Rejected(
                        f"{job.consultation_id}#{job.index}", res["reason"], job.consultation_id
                    )
                )
                quarantine(
                    conn,
                    domain=DOMAIN,
                    source=SOURCE_IMAGES,
                    item_id=f"{job.consultation_id}#{job.index}",
                    reason=res["reason"],
                    payload={
                        "url": job.url,
                        "drive_file_id": res.get("item"),
                        "drive_md5": res.get("md5"),
                    },
                    run_id=run_id,
                )
                if job.stored:  # keep the previous good copy
                    by_record.setdefault(job.consultation_id, {})[job.index] = job.stored[
                        "storage_path"
                    ]
                continue
            by_record.setdefault(job.consultation_id, {})[job.index] = res["path"]
            if res["status"] == "skipped":
                outcome.skipped += 1
                continue
            outcome.synced += 1
            bytes_uploaded += res["row"][-1]
            conn.execute(
                """INSERT INTO public.consultation_image_objects
                     (consultation_id, image_index, drive_file_id, drive_md5, drive_modified_time, storage_path,
                      content_type, size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (consultation_id, image_index) DO UPDATE SET drive_file_id = EXCLUDED.drive_file_id,
                     drive_md5 = EXCLUDED.drive_md5, drive_modified_time = EXCLUDED.drive_modified_time,
                     storage_path = EXCLUDED.storage_path, content_type = EXCLUDED.content_type,
                     size_bytes = EXCLUDED.size_bytes, uploaded_at = now()""",
                res["row"],
            )
            resolve_quarantine(
                conn,
                domain=DOMAIN,
                source=SOURCE_IMAGES,
                item_id=f"{job.consultation_id}#{job.index}",
            )
        stale = []
        for r in records:
            paths = by_record.get(r["consultation_id"], {})
            urls = [storage.object_url(BUCKET, paths[n]) for n in sorted(paths)]
            if T.normalize(urls) != T.normalize(r["supabase_image_urls"] or []):
                conn.execute(
                    "UPDATE public.consultation_records SET supabase_image_urls = %s, synced_at = now()"
                    " WHERE consultation_id = %s",
                    (Jsonb(urls), r["consultation_id"]),
                )
            count = len(r["google_drive_urls"] or [])
            stale += [
                row[0]
                for row in conn.execute(
                    "DELETE FROM public.consultation_image_objects WHERE consultation_id = %s AND image_index > %s"
                    " RETURNING storage_path",
                    (r["consultation_id"], count),
                ).fetchall()
            ]
    if stale:
        storage.remove(BUCKET, stale)
    outcome.extra.update(bytes_uploaded=bytes_uploaded, images_removed=len(stale))
    return outcome


def merge_outcomes(parts: list[SyncOutcome]) -> SyncOutcome:
    total = SyncOutcome()
    for part in parts:
        total.total += part.total
        total.synced += part.synced
        total.skipped += part.skipped
        total.failures += part.failures
        for key, value in part.extra.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total.extra[key] = total.extra.get(key, 0) + value
            else:
                total.extra.setdefault(key, value)
    return total


def sync_records_and_images(
    notion: NotionResource,
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    db: PostgresResource,
    database_id: str,
    start: date,
    end: date,
    *,
    strategy: str = "notion_wins",
    run_id: str | None = None,
    edited_since: str | None = None,
    workers: int = 4,
) -> tuple[WindowResult, SyncOutcome]:
    """Records and their images in one pass: while the Notion reads wait on the rate limit,
    each committed batch's images are copied from Drive in the background. Images of rows that
    Notion did not return this time (unchanged, or healed by the sweep) get a final pass."""
    if not storage.available:
        result = sync_records(
            notion,
            db,
            database_id,
            start,
            end,
            strategy=strategy,
            run_id=run_id,
            edited_since=edited_since,
        )
        return result, sync_images(drive, storage, db, start, end, run_id=run_id)
    storage.ensure_bucket(
        BUCKET,
        public=False,
        file_size_limit=BUCKET_FILE_SIZE_LIMIT,
        allowed_mime_types=BUCKET_MIME_TYPES,
    )
    done: set[str] = set()
    futures = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="images") as background:

        def submit(ids: list[str]) -> None:
            done.update(ids)
            futures.append(
                background.submit(
                    sync_images,
                    drive,
                    storage,
                    db,
                    start,
                    end,
                    run_id=run_id,
                    workers=workers,
                    consultation_ids=ids,
                    ensure_bucket=False,
                )
            )

        result = sync_records(
            notion,
            db,
            database_id,
            start,
            end,
            strategy=strategy,
            run_id=run_id,
            edited_since=edited_since,
            on_batch=submit,
        )
        parts = [f.result() for f in futures]
    if edited_since is None:
        rest = [
            r["consultation_id"]
            for r in db.fetch_all(
                "SELECT consultation_id FROM public.consultation_records WHERE consultation_date >= %s"
                " AND consultation_date < %s AND NOT is_deleted",
                (start, end),
            )
            if r["consultation_id"] not in done
        ]
        if rest:
            parts.append(
                sync_images(
                    drive,
                    storage,
                    db,
                    start,
                    end,
                    run_id=run_id,
                    workers=workers,
                    consultation_ids=rest,
                    ensure_bucket=False,
                )
            )
    images = merge_outcomes(parts)
    images.extra["window"] = f"{start.isoformat()}...{end.isoformat()}"
    return result, images


# -- nightly reconcile ------------------------------------------------------------------------
def reconcile(
    notion: NotionResource, db: PostgresResource, customers_db: str, consultations_db: str
) -> SyncOutcome:
    """Full ID reconciliation: rows whose page is trashed or deleted in Notion become
    ``is_deleted = true`` (never a hard delete); ``consultation_count`` is recomputed."""
    outcome, stats = SyncOutcome(), QueryStats()
    live_customers = {
        p["id"]
        for p in notion.iter_pages(
            notion.data_source_id(customers_db), stats=stats, filter_properties=["title"]
        )
    }
    live_records = {
        p["id"]
        for p in notion.iter_pages(
            notion.data_source_id(consultations_db), stats=stats, filter_properties=["title"]
        )
    }
    outcome.total = len(live_customers) + len(live_records)
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
        recounted = conn.execute(
            """UPDATE public.consultation_customers c SET consultation_count = coalesce(s.n, 0), synced_at = now()
                 FROM public.consultation_customers c2
                 LEFT JOIN (SELECT customer_id, count(*) AS n FROM public.consultation_records
                             WHERE NOT is_deleted GROUP BY customer_id) s ON s.customer_id = c2.id
                WHERE c.id = c2.id AND c.consultation_count IS DISTINCT FROM coalesce(s.n, 0)"""
        ).rowcount
    outcome.synced = deleted_records + deleted_customers + recounted
    outcome.extra.update(
        soft_deleted_customers=deleted_customers,
        soft_deleted_records=deleted_records,
        consultation_counts_updated=recounted,
        notion_customers=len(live_customers),
        notion_consultations=len(live_records),
        notion_requests=stats.requests,
    )
    return outcome


def now_utc() -> datetime:
    return datetime.now(UTC)
