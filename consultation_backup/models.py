"""Data shapes of the backup: rows as they are written to Supabase, and small results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar, Literal, Protocol

ConflictStrategy = Literal["notion_wins", "latest_wins", "manual"]
CONFLICT_STRATEGIES: tuple[ConflictStrategy, ...] = ("notion_wins", "latest_wins", "manual")
ConflictDecision = Literal["apply", "keep", "conflict"]
SyncMode = Literal["full", "incremental"]
SyncStatus = Literal["completed", "partial"]
ImageStatus = Literal["uploaded", "skipped", "rejected", "unsynced"]


class NotionPageLike(Protocol):
    """What the parsers read of a Notion page (``resources.notion.NotionPage`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def created_time(self) -> str: ...
    @property
    def last_edited_time(self) -> str: ...
    @property
    def in_trash(self) -> bool: ...
    @property
    def properties(self) -> Mapping[str, Any]: ...


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _row_dict(row: Any) -> dict[str, Any]:
    """A row's columns as a dict: a shallow copy (``asdict`` deep-copied every raw Notion
    property of every page, an eighth of a full backup's CPU; rows are frozen and their
    values never mutated)."""
    return {name: getattr(row, name) for name in _field_names(type(row))}


@dataclass(frozen=True)
class CustomerRow:
    """One ``consultation_customers`` row, from a Notion customer page."""

    notion_page_id: str
    customer_id: str
    name: str
    phone: str | None
    gender: str | None
    birth_date: date | None
    estimated_age: int | None
    address: str | None
    special_note: str | None
    face_embedding: Any
    google_drive_folder_id: str | None
    consultation_count: int
    is_deleted: bool
    notion_updated_at: datetime

    # fields compared for conflicts and consistency (not bookkeeping)
    CONTENT_FIELDS: ClassVar[tuple[str, ...]] = (
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
        "is_deleted",
    )

    def as_dict(self) -> dict[str, Any]:
        return _row_dict(self)


@dataclass(frozen=True)
class RecordRow:
    """One ``consultation_records`` row, from a Notion consultation page (its customer is
    resolved against the backup later)."""

    notion_page_id: str
    consultation_id: str
    customer_notion_id: str
    consultation_date: date
    symptoms: str
    patient_condition: str | None
    tongue_analysis: str | None
    special_note: str | None
    prescription: str | None
    result: str | None
    image_count: int
    google_drive_urls: list[str]
    notion_created_at: datetime
    notion_updated_at: datetime

    CONTENT_FIELDS: ClassVar[tuple[str, ...]] = (
        "consultation_id",
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
    )

    def as_dict(self) -> dict[str, Any]:
        return _row_dict(self)


@dataclass(frozen=True)
class Rejected:
    """A page or file that could not be backed up, and why."""

    item_id: str
    reason: str
    business_id: str | None = None


@dataclass(frozen=True)
class SyncTotals:
    """Counts every sync reports: read, written, skipped unchanged, conflicts, quarantined."""

    total: int = 0
    synced: int = 0
    skipped: int = 0
    conflicts: int = 0
    failures: tuple[Rejected, ...] = ()

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def status(self) -> SyncStatus:
        return "partial" if self.failures else "completed"

    def log_details(self) -> dict[str, Any]:
        """The part of ``consultation_sync_logs.details`` every sync writes."""
        return {
            "skipped_unchanged": self.skipped,
            "conflicts": self.conflicts,
            "failures": [
                {"page_id": f.item_id, "id": f.business_id, "reason": f.reason}
                for f in self.failures[:500]
            ],
        }


def merge_totals(parts: Iterable[SyncTotals]) -> SyncTotals:
    """The sum of several partial syncs (e.g. image batches of one window)."""
    items = list(parts)
    return SyncTotals(
        total=sum(p.total for p in items),
        synced=sum(p.synced for p in items),
        skipped=sum(p.skipped for p in items),
        conflicts=sum(p.conflicts for p in items),
        failures=tuple(f for p in items for f in p.failures),
    )


@dataclass(frozen=True)
class CustomersResult:
    """What one customer sync did."""

    totals: SyncTotals
    mode: SyncMode
    since: str | None
    watermark: str | None
    soft_deleted: int
    kept_supabase_version: tuple[str, ...]
    notion_requests: int
    cap_splits: int

    def log_details(self) -> dict[str, Any]:
        details = {
            **self.totals.log_details(),
            "mode": self.mode,
            "since": self.since,
            "watermark": self.watermark,
            "soft_deleted": self.soft_deleted,
            "notion_requests": self.notion_requests,
            "cap_splits": self.cap_splits,
        }
        if self.kept_supabase_version:
            details["kept_supabase_version"] = list(self.kept_supabase_version)
        return details


@dataclass(frozen=True)
class ReconcileResult:
    """What the full ID reconciliation against Notion changed."""

    soft_deleted_customers: int
    soft_deleted_records: int
    consultation_counts_updated: int
    notion_customers: int
    notion_consultations: int
    notion_requests: int

    @property
    def changed(self) -> int:
        return (
            self.soft_deleted_customers
            + self.soft_deleted_records
            + self.consultation_counts_updated
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "soft_deleted_customers": self.soft_deleted_customers,
            "soft_deleted_records": self.soft_deleted_records,
            "consultation_counts_updated": self.consultation_counts_updated,
            "notion_customers": self.notion_customers,
            "notion_consultations": self.notion_consultations,
            "notion_requests": self.notion_requests,
        }


@dataclass(frozen=True)
class FullSyncResult:
    """A customer sync followed by the reconciliation (the nightly run)."""

    customers: CustomersResult
    reconcile: ReconcileResult

    @property
    def totals(self) -> SyncTotals:
        return self.customers.totals

    def log_details(self) -> dict[str, Any]:
        return {**self.customers.log_details(), "reconcile": self.reconcile.as_dict()}


@dataclass(frozen=True)
class RecordsResult:
    """What one consultation sync of a 상담일자 window did, and the ids each side holds."""

    totals: SyncTotals
    window: str
    edited_since: str | None
    soft_deleted: int
    customers_healed: int
    kept_supabase_version: tuple[str, ...]
    notion_requests: int
    cap_splits: int
    notion_ids: frozenset[str]
    supabase_ids: frozenset[str]

    @property
    def missing_in_supabase(self) -> frozenset[str]:
        rejected = {f.item_id for f in self.totals.failures}
        return self.notion_ids - self.supabase_ids - rejected

    @property
    def extra_in_supabase(self) -> frozenset[str]:
        return self.supabase_ids - self.notion_ids

    def log_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            **self.totals.log_details(),
            "window": self.window,
            "notion_requests": self.notion_requests,
            "cap_splits": self.cap_splits,
            "soft_deleted": self.soft_deleted,
        }
        if self.edited_since:
            details["edited_since"] = self.edited_since
        if self.customers_healed:
            details["customers_healed"] = self.customers_healed
        if self.kept_supabase_version:
            details["kept_supabase_version"] = list(self.kept_supabase_version)
        return details


@dataclass(frozen=True)
class ImagesResult:
    """What one image copy of a window did; ``skipped_reason`` when Storage was unavailable."""

    totals: SyncTotals
    window: str
    skipped_reason: str | None = None
    bytes_uploaded: int = 0
    images_removed: int = 0

    def log_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            **self.totals.log_details(),
            "window": self.window,
            "bytes_uploaded": self.bytes_uploaded,
            "images_removed": self.images_removed,
        }
        if self.skipped_reason:
            details["skipped_reason"] = self.skipped_reason
        return details


def merge_images(parts: Iterable[ImagesResult], window: str) -> ImagesResult:
    """Image copies of several batches of one window as one result."""
    items = list(parts)
    return ImagesResult(
        totals=merge_totals(p.totals for p in items),
        window=window,
        skipped_reason=next((p.skipped_reason for p in items if p.skipped_reason), None),
        bytes_uploaded=sum(p.bytes_uploaded for p in items),
        images_removed=sum(p.images_removed for p in items),
    )


@dataclass(frozen=True)
class StoredImage:
    """One ``consultation_image_objects`` row: which Drive version a stored copy came from."""

    consultation_id: str
    image_index: int
    drive_file_id: str
    drive_md5: str
    drive_modified_time: datetime | None
    storage_path: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class ImageCopy:
    """What happened to one image: ``uploaded`` (with its new row), ``skipped`` (unchanged),
    or ``rejected`` (with the reason, quarantined)."""

    status: ImageStatus
    path: str | None = None
    stored: StoredImage | None = None
    reason: str | None = None
    drive_file_id: str | None = None
    drive_md5: str | None = None


@dataclass(frozen=True)
class ConsistencyReport:
    """Whether one customer or consultation agrees in Notion and in the backup, and what to
    do when it does not."""

    entity: str
    key: str
    consistent: bool
    differences: list[str]
    recommendations: list[str]


@dataclass(frozen=True)
class WindowSync:
    """Records and images of one 상담일자 window, synced in one pass."""

    records: RecordsResult
    images: ImagesResult


@dataclass(frozen=True)
class PinnedProperty:
    """A Notion property the backup reads, pinned by its stable id (renames keep the id)."""

    canonical: str  # the seed's name, which the parsers use
    property_id: str
    type: str
    name: str  # the name it has in Notion now


@dataclass(frozen=True)
class ResolvedSchema:
    """The properties of one data source as the backup reads them: canonical name -> pinned."""

    database_id: str
    data_source_id: str
    properties: Mapping[str, PinnedProperty]

    def id_of(self, canonical: str) -> str:
        """The property id to filter on (Notion filters take an id in place of a name)."""
        pinned = self.properties.get(canonical)
        return pinned.property_id if pinned is not None else canonical

    @property
    def canonical_by_id(self) -> dict[str, str]:
        return {p.property_id: p.canonical for p in self.properties.values()}
