"""Records and their images of one window in one pass: while the Notion reads wait on the rate
limit, each committed batch's images are copied from Drive in the background."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from functools import partial

from consultation_backup.images import prepare_bucket, sync_images
from consultation_backup.models import (
    ConflictStrategy,
    ImagesResult,
    WindowSync,
    merge_images,
)
from consultation_backup.records import sync_records
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource


def _not_yet_copied(db: PostgresResource, start: date, end: date, done: set[str]) -> list[str]:
    """Live consultations of the window whose images no batch has copied this run."""
    rows = db.fetch_all(
        "SELECT consultation_id FROM public.consultation_records"
        " WHERE consultation_date >= %s AND consultation_date < %s AND NOT is_deleted",
        (start, end),
    )
    return [r["consultation_id"] for r in rows if r["consultation_id"] not in done]


def sync_records_and_images(
    notion: NotionResource,
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    db: PostgresResource,
    database_id: str,
    start: date,
    end: date,
    *,
    strategy: ConflictStrategy = "notion_wins",
    run_id: str | None = None,
    edited_since: str | None = None,
    workers: int = 4,
) -> WindowSync:
    """Records, and each committed batch's images while the next batch is read. Images of rows
    that Notion did not return this time (unchanged, or healed by the sweep) get a final pass
    (not after an ``edited_since`` run, which only looks at edits)."""
    read_records = partial(
        sync_records,
        notion,
        db,
        database_id,
        start,
        end,
        strategy=strategy,
        run_id=run_id,
        edited_since=edited_since,
    )
    if not storage.available:
        records = read_records()
        images = sync_images(drive, storage, db, start, end, run_id=run_id, notion=notion)
        return WindowSync(records, images)
    prepare_bucket(storage)
    done: set[str] = set()
    futures: list[Future[ImagesResult]] = []

    def copy_images(ids: list[str]) -> ImagesResult:
        return sync_images(
            drive,
            storage,
            db,
            start,
            end,
            run_id=run_id,
            workers=workers,
            consultation_ids=ids,
            ensure_bucket=False,
            notion=notion,
            pool=copiers,
        )

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="images") as background,
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="copy") as copiers,
    ):

        def submit(ids: list[str]) -> None:
            done.update(ids)
            futures.append(background.submit(copy_images, ids))

        records = read_records(on_batch=submit)
        parts = [f.result() for f in futures]
        if edited_since is None:
            rest = _not_yet_copied(db, start, end, done)
            if rest:
                parts.append(copy_images(rest))
    window = f"{start.isoformat()}...{end.isoformat()}"
    return WindowSync(records, merge_images(parts, window))
