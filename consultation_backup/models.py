"""Data shapes of the backup: rows as they are written to Supabase, and small results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any


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
    CONTENT_FIELDS = (
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
        return asdict(self)


@dataclass(frozen=True)
class RecordRow:
    """One ``consultation_records`` row, from a Notion consultation page (customer resolved later)."""

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

    CONTENT_FIELDS = (
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
        return asdict(self)


@dataclass(frozen=True)
class Rejected:
    """A page or file that could not be backed up, and why."""

    item_id: str
    reason: str
    business_id: str | None = None


@dataclass
class SyncOutcome:
    """Totals of one sync, written to ``consultation_sync_logs``."""

    total: int = 0
    synced: int = 0
    skipped: int = 0
    failures: list[Rejected] = field(default_factory=list)
    conflicts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def status(self) -> str:
        return "partial" if self.failures else "completed"

    def details(self) -> dict[str, Any]:
        return {
            "skipped_unchanged": self.skipped,
            "conflicts": self.conflicts,
            "failures": [
                {"page_id": f.item_id, "id": f.business_id, "reason": f.reason}
                for f in self.failures[:500]
            ],
            **self.extra,
        }


@dataclass(frozen=True)
class ConsistencyReport:
    """Seed 004's ``validateDataConsistency`` result for one customer or consultation."""

    entity: str
    key: str
    consistent: bool
    differences: list[str]
    recommendations: list[str]
