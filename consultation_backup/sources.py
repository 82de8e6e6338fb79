"""What the observable source assets report about the two Notion databases and the Drive folder,
cheaply: the last edit from one sorted query (one result), the schema version from the data
source's properties, and the counts from Supabase rather than a full Notion scan."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource

LAST_EDITED_FIRST = ({"timestamp": "last_edited_time", "direction": "descending"},)


@dataclass(frozen=True)
class NotionObservation:
    """A Notion database as the UI shows it on the source side of the lineage."""

    last_edited_time: str | None
    schema_version: str
    properties: int
    backup_live_rows: int
    backup_deleted_rows: int
    open_quarantine: int
    notion_requests: int

    @property
    def data_version(self) -> str:
        return f"{self.last_edited_time or 'empty'}|schema:{self.schema_version}"

    def metadata(self) -> dict[str, Any]:
        return {k: v if v is not None else "none" for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DriveObservation:
    """The Drive image folder, from its own metadata and the backup's image objects."""

    folder_modified_time: str | None
    newest_backed_up_image: str | None
    backed_up_images: int
    backed_up_bytes: int

    @property
    def data_version(self) -> str:
        return f"{self.folder_modified_time or 'unknown'}|{self.newest_backed_up_image or 'none'}"

    def metadata(self) -> dict[str, Any]:
        return {k: v if v is not None else "none" for k, v in asdict(self).items()}


def schema_version(properties: list[tuple[str, str, str]]) -> str:
    """A short hash of the (id, name, type) of every property: changes with a rename, a type
    change, an added or removed property."""
    body = json.dumps(sorted(properties), ensure_ascii=False)
    return hashlib.sha1(body.encode()).hexdigest()[:12]


def observe_notion_database(
    notion: NotionResource, db: PostgresResource, database_id: str, table: str, source: str
) -> NotionObservation:
    """Two Notion requests (newest page, schema) and one Supabase query."""
    ds = notion.data_source_id(database_id)
    newest = notion.query_data_source(ds, sorts=LAST_EDITED_FIRST, page_size=1).results
    schema = notion.retrieve_data_source(ds)
    counts = db.fetch_one(
        f"SELECT count(*) FILTER (WHERE NOT is_deleted) AS live,"
        f" count(*) FILTER (WHERE is_deleted) AS deleted FROM public.{table}"
    )
    quarantined = db.fetch_value(
        "SELECT count(DISTINCT item_id) FROM public.data_quarantine"
        " WHERE domain = 'consultation_backup' AND source = %s AND resolved_at IS NULL",
        (source,),
    )
    return NotionObservation(
        last_edited_time=newest[0].last_edited_time if newest else None,
        schema_version=schema_version([(p.id, p.name, p.type) for p in schema.properties]),
        properties=len(schema.properties),
        backup_live_rows=int(counts["live"]) if counts else 0,
        backup_deleted_rows=int(counts["deleted"]) if counts else 0,
        open_quarantine=int(quarantined or 0),
        notion_requests=2,
    )


def observe_drive_folder(drive: GoogleDriveResource, db: PostgresResource) -> DriveObservation:
    """One Drive request (the root folder's metadata) and one Supabase query."""
    modified = None
    if drive.root_folder_id:
        request = (
            drive.get_client()
            .files()
            .get(fileId=drive.root_folder_id, fields="id,modifiedTime", supportsAllDrives=True)
        )
        meta = drive.caller.call(request.execute, num_retries=0)
        modified = meta.get("modifiedTime")
    row = db.fetch_one(
        "SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS bytes,"
        " max(drive_modified_time) AS newest FROM public.consultation_image_objects"
    )
    newest = row["newest"].isoformat() if row and row["newest"] else None
    return DriveObservation(
        folder_modified_time=modified,
        newest_backed_up_image=newest,
        backed_up_images=int(row["n"]) if row else 0,
        backed_up_bytes=int(row["bytes"]) if row else 0,
    )
