"""The image copy of a 상담일자 window: every Google Drive link of the window's live records is
copied into the private bucket (type sniffed from the bytes), and the records get their
``supabase_image_urls``. An image whose Drive version (md5, else modifiedTime) is the one already
stored is not downloaded again; a bad image is quarantined and its previous copy kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from consultation_backup import history as H
from consultation_backup import transform as T
from consultation_backup.constants import (
    BUCKET,
    BUCKET_FILE_SIZE_LIMIT,
    BUCKET_MIME_TYPES,
    DOMAIN,
    SOURCE_IMAGES,
)
from consultation_backup.models import ImageCopy, ImagesResult, Rejected, StoredImage
from consultation_backup.notion_files import NotionFiles
from consultation_backup.writes import Tally
from resources.errors import PermanentError, ServiceUnavailable, TransientError
from resources.google_drive import DriveFile, GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.state import quarantine, resolve_quarantine
from resources.supabase_storage import SupabaseStorageResource

UPSERT_IMAGE = """
INSERT INTO public.consultation_image_objects
  (consultation_id, image_index, drive_file_id, drive_md5, drive_modified_time, storage_path,
   content_type, size_bytes)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (consultation_id, image_index) DO UPDATE SET
  drive_file_id = EXCLUDED.drive_file_id, drive_md5 = EXCLUDED.drive_md5,
  drive_modified_time = EXCLUDED.drive_modified_time, storage_path = EXCLUDED.storage_path,
  content_type = EXCLUDED.content_type, size_bytes = EXCLUDED.size_bytes, uploaded_at = now()
"""


@dataclass(frozen=True)
class KnownBad:
    """An open quarantine entry of an image: the Drive md5 found unusable and why."""

    md5: str | None
    reason: str


@dataclass(frozen=True)
class ImageJob:
    """One image link of a record, with the stored copy and open quarantine entry if any."""

    consultation_id: str
    customer_id: str
    index: int
    url: str
    stored: Mapping[str, Any] | None
    known_bad: KnownBad | None = None

    @property
    def item_id(self) -> str:
        return f"{self.consultation_id}#{self.index}"


def _missing(fid: str) -> ImageCopy:
    return ImageCopy(
        "rejected", reason=f"image missing in Google Drive (404): {fid}", drive_file_id=fid
    )


def _precheck(drive: GoogleDriveResource, job: ImageJob, fid: str) -> DriveFile | ImageCopy:
    """For an image seen before, decide by metadata alone when possible (one small request,
    no download): unchanged, known bad, too large; else the metadata to copy it with."""
    meta = drive.file_metadata(fid)
    if meta is None:
        return _missing(fid)
    if job.stored is not None and T.image_unchanged(
        job.stored, file_id=meta.id, md5=meta.md5_checksum, modified_time=meta.modified_time
    ):
        return ImageCopy("skipped", path=job.stored["storage_path"])
    bad = job.known_bad
    if bad is not None and bad.md5 and bad.md5 == meta.md5_checksum:
        # the same bytes were already found unusable: say so again without downloading them
        return ImageCopy("rejected", reason=bad.reason, drive_file_id=fid, drive_md5=bad.md5)
    size = meta.size or 0
    if size > BUCKET_FILE_SIZE_LIMIT:
        return ImageCopy(
            "rejected",
            reason=f"image too large: {size} bytes > {BUCKET_FILE_SIZE_LIMIT}",
            drive_file_id=fid,
            drive_md5=meta.md5_checksum,
        )
    return meta


def _download(drive: GoogleDriveResource, fid: str) -> bytes | ImageCopy:
    try:
        return drive.download(fid, max_bytes=BUCKET_FILE_SIZE_LIMIT)
    except PermanentError as exc:
        if exc.status == 404:
            return _missing(fid)
        if exc.status == 413:
            reason = f"image too large: {exc} (limit {BUCKET_FILE_SIZE_LIMIT})"
        else:
            reason = f"download failed: {exc}"[:300]
        return ImageCopy("rejected", reason=reason, drive_file_id=fid)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def keep_version(storage: SupabaseStorageResource, stored: Mapping[str, Any]) -> str | None:
    """Copy a stored image to its ``versions/`` path (idempotent: same bytes, same path) before
    it is replaced or dropped; returns that path (None when the object is already gone)."""
    target = H.version_path(stored["storage_path"], stored.get("uploaded_at"))
    try:
        data = storage.download(BUCKET, stored["storage_path"])
    except PermanentError as exc:
        if exc.status in (400, 404):
            return None
        raise
    storage.upload(BUCKET, target, data, stored["content_type"], upsert=True)
    return target


def _backup_or_defer(
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    job: ImageJob,
    notion_files: NotionFiles | None = None,
) -> ImageCopy:
    """``_backup_one``, but a Drive or Storage outage (retries exhausted, breaker open) leaves
    only this image unsynced: the records already committed stay as they are, the previous copy
    is kept, nothing is quarantined (the image is not bad), and the next run copies it."""
    try:
        return _backup_one(drive, storage, job, notion_files)
    except (TransientError, ServiceUnavailable) as exc:
        kept = str(job.stored["storage_path"]) if job.stored else None
        reason = f"unsynced: {type(exc).__name__}: {exc}"[:300]
        return ImageCopy("unsynced", path=kept, reason=reason)


def _backup_one(
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    job: ImageJob,
    notion_files: NotionFiles | None = None,
) -> ImageCopy:
    """Copy one image if it changed.

    An image never backed up is downloaded straight away (its md5 is computed from the bytes,
    which is what Drive's md5Checksum is); a known one is first compared by metadata. A
    Notion-hosted file (no metadata to compare) is fetched through a fresh signed URL and
    compared by md5.
    """
    meta: DriveFile | None = None
    if T.parse_notion_file_ref(job.url) is not None:
        fid = job.url  # the stable identity, never the expiring URL
        data = (notion_files or NotionFiles(None, BUCKET_FILE_SIZE_LIMIT)).fetch(fid)
        if isinstance(data, ImageCopy):
            return data
        seen = job.stored or {}
        if seen.get("drive_file_id") == fid and seen.get("drive_md5") == _md5(data):
            return ImageCopy("skipped", path=seen["storage_path"])
    else:
        drive_id = T.drive_file_id(job.url)
        if drive_id is None:
            reason = f"not a Google Drive link: {job.url[:120]}"
            return ImageCopy("rejected", reason=reason, drive_file_id=job.url)
        fid = drive_id
        if job.stored is not None or job.known_bad is not None:
            checked = _precheck(drive, job, fid)
            if isinstance(checked, ImageCopy):
                return checked
            meta = checked
        data = _download(drive, fid)
        if isinstance(data, ImageCopy):
            return data
    md5 = _md5(data)
    sniffed = T.sniff_image(data)
    if sniffed is None:
        name = (meta.name if meta else "") or fid
        reason = f"not an image: content of {name} is not JPEG/PNG/WebP"
        return ImageCopy("rejected", reason=reason, drive_file_id=fid, drive_md5=md5)
    mime, ext = sniffed
    path = T.storage_path(job.customer_id, job.consultation_id, job.index, ext)
    if job.stored is not None:
        # never overwrite: the copy being replaced moves under versions/ first
        keep_version(storage, job.stored)
    storage.upload(BUCKET, path, data, mime, upsert=True)
    old_path = (job.stored or {}).get("storage_path")
    if old_path and old_path != path:
        storage.remove(BUCKET, [old_path])
    modified = meta.modified_time if meta else None
    stored = StoredImage(
        job.consultation_id,
        job.index,
        fid,
        (meta.md5_checksum if meta else None) or md5,
        T.parse_timestamp(modified) if modified else None,
        path,
        mime,
        len(data),
    )
    return ImageCopy("uploaded", path=path, stored=stored)


def _load_jobs(
    db: PostgresResource, start: date, end: date, consultation_ids: list[str] | None
) -> tuple[list[dict[str, Any]], list[ImageJob]]:
    """The window's live records and one job per image link."""
    only = "" if consultation_ids is None else " AND r.consultation_id = ANY(%s)"
    records = db.fetch_all(
        "SELECT r.consultation_id, r.notion_page_id, r.google_drive_urls,"
        " r.supabase_image_urls, c.customer_id"
        " FROM public.consultation_records r"
        " JOIN public.consultation_customers c ON c.id = r.customer_id"
        " WHERE r.consultation_date >= %s AND r.consultation_date < %s AND NOT r.is_deleted"
        f"{only} ORDER BY r.consultation_id",
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
        r["item_id"]: KnownBad((r["payload"] or {}).get("drive_md5"), r["reason"])
        for r in db.fetch_all(
            "SELECT item_id, reason, payload FROM public.data_quarantine"
            " WHERE domain = %s AND source = %s AND resolved_at IS NULL",
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
    return records, jobs


def _record_copy(
    conn: psycopg.Connection[Any],
    job: ImageJob,
    copy: ImageCopy,
    tally: Tally,
    run_id: str | None,
) -> str | None:
    """Write what happened to one image; returns the path the record should show, if any."""
    if copy.status == "rejected":
        reason = copy.reason or "rejected"
        tally.failures.append(Rejected(job.item_id, reason, job.consultation_id))
        payload = {"url": job.url, "drive_file_id": copy.drive_file_id, "drive_md5": copy.drive_md5}
        quarantine(
            conn,
            domain=DOMAIN,
            source=SOURCE_IMAGES,
            item_id=job.item_id,
            reason=reason,
            payload=payload,
            run_id=run_id,
        )
        # keep the previous good copy
        return str(job.stored["storage_path"]) if job.stored else None
    if copy.status == "skipped":
        tally.skipped += 1
        return copy.path
    if copy.status == "unsynced":
        # counted as not done (the run ends partial), not quarantined: the image is not bad
        tally.failures.append(Rejected(job.item_id, copy.reason or "unsynced", job.consultation_id))
        return copy.path
    assert copy.stored is not None, "an uploaded image carries its row"
    tally.synced += 1
    s = copy.stored
    conn.execute(
        UPSERT_IMAGE,
        (
            s.consultation_id,
            s.image_index,
            s.drive_file_id,
            s.drive_md5,
            s.drive_modified_time,
            s.storage_path,
            s.content_type,
            s.size_bytes,
        ),
    )
    if job.stored is not None:
        H.mark_moved(
            conn,
            job.item_id,
            H.version_path(job.stored["storage_path"], job.stored.get("uploaded_at")),
        )
    resolve_quarantine(conn, domain=DOMAIN, source=SOURCE_IMAGES, item_id=job.item_id)
    return copy.path


def _link_records(
    conn: psycopg.Connection[Any],
    storage: SupabaseStorageResource,
    records: list[dict[str, Any]],
    paths_by_record: Mapping[str, Mapping[int, str]],
) -> list[str]:
    """Point each record at its copies and drop copies past its image count (kept under
    ``versions/``); returns the Storage paths no record uses any more."""
    stale: list[str] = []
    for r in records:
        paths = paths_by_record.get(r["consultation_id"], {})
        urls = [storage.object_url(BUCKET, paths[n]) for n in sorted(paths)]
        if T.normalize(urls) != T.normalize(r["supabase_image_urls"] or []):
            conn.execute(
                "UPDATE public.consultation_records SET supabase_image_urls = %s,"
                " synced_at = now() WHERE consultation_id = %s",
                (Jsonb(urls), r["consultation_id"]),
            )
        with conn.cursor(row_factory=dict_row) as cur:
            removed = cur.execute(
                "DELETE FROM public.consultation_image_objects"
                " WHERE consultation_id = %s AND image_index > %s RETURNING *",
                (r["consultation_id"], len(r["google_drive_urls"] or [])),
            ).fetchall()
        for row in removed:
            kept = keep_version(storage, row)
            if kept is not None:
                H.mark_moved(conn, f"{row['consultation_id']}#{row['image_index']}", kept)
            stale.append(row["storage_path"])
    return stale


def prepare_bucket(storage: SupabaseStorageResource) -> None:
    """Create the private bucket with its limits, or bring them in line."""
    storage.ensure_bucket(
        BUCKET,
        public=False,
        file_size_limit=BUCKET_FILE_SIZE_LIMIT,
        allowed_mime_types=BUCKET_MIME_TYPES,
    )


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
    notion: NotionResource | None = None,
    pool: Executor | None = None,
) -> ImagesResult:
    """Copy the window's consultation images from Drive to the private bucket.

    ``consultation_ids`` restricts the work to those consultations (the pipelined path calls it
    per committed batch of records). ``notion`` fetches Notion-hosted files (without it they
    are quarantined with that reason). ``pool`` copies them (a run's batches share one, so its
    threads keep their clients); without it, a pool of ``workers`` threads for this call.
    """
    window = f"{start.isoformat()}...{end.isoformat()}"
    if not storage.available:
        return ImagesResult(Tally().freeze(), window, skipped_reason=storage.unavailable_reason)
    if ensure_bucket:
        prepare_bucket(storage)
    records, jobs = _load_jobs(db, start, end, consultation_ids)
    tally = Tally(total=len(jobs))
    hosted = NotionFiles(notion, BUCKET_FILE_SIZE_LIMIT)

    def copy_one(job: ImageJob) -> ImageCopy:
        return _backup_or_defer(drive, storage, job, hosted)

    if pool is not None:
        copies = list(pool.map(copy_one, jobs))
    else:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as own:
            copies = list(own.map(copy_one, jobs))
    paths_by_record: dict[str, dict[int, str]] = {}
    with db.transaction() as conn:
        H.tag_run(conn, run_id)
        for job, copy in zip(jobs, copies, strict=True):
            path = _record_copy(conn, job, copy, tally, run_id)
            if path is not None:
                paths_by_record.setdefault(job.consultation_id, {})[job.index] = path
        stale = _link_records(conn, storage, records, paths_by_record)
    if stale:
        storage.remove(BUCKET, stale)
    uploaded = sum(c.stored.size_bytes for c in copies if c.stored is not None)
    return ImagesResult(tally.freeze(), window, bytes_uploaded=uploaded, images_removed=len(stale))
