"""The shapes the sync operations return: frozen, so a result is a record of what committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Operation = Literal["batch", "backfill", "two_way", "reverse", "conflict", "restore"]
RunStatus = Literal["success", "partial"]


@dataclass(frozen=True)
class MergeOutcome:
    """What one guarded merge of a staging table did.

    ``rejected`` lists ``(key, reason)`` of rows the external side refused (a merge into the
    source logs nothing there; the reasons travel to Supabase's sync_log instead).
    """

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    merged_as_group: int = 0
    rejected: tuple[tuple[str, str], ...] = ()

    def __add__(self, other: MergeOutcome) -> MergeOutcome:
        return MergeOutcome(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            deleted=self.deleted + other.deleted,
            quarantined=self.quarantined + other.quarantined,
            # the latest group merge is the one reported
            merged_as_group=other.merged_as_group or self.merged_as_group,
            rejected=self.rejected + other.rejected,
        )


@dataclass(frozen=True)
class LocalEditRevert:
    """Supabase edits of a source-owned table undone by one batch run."""

    keys: int = 0
    restored: int = 0
    merge: MergeOutcome = field(default_factory=MergeOutcome)


@dataclass(frozen=True)
class ReconcileOutcome:
    """The key-range hash reconciliation: chunks compared, rows re-copied and deleted."""

    chunks_compared: int = 0
    chunks_different: int = 0
    rows_read: int = 0
    bytes_copied: int = 0
    copied: int = 0
    deleted_keys: int = 0
    merge: MergeOutcome = field(default_factory=MergeOutcome)

    @property
    def written(self) -> int:
        return self.merge.inserted + self.merge.updated + self.merge.deleted


@dataclass(frozen=True)
class DirectionCounts:
    """One direction of a two-way exchange."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class SyncResult:
    """The figures of one committed sync run of one table."""

    table: str
    operation: Operation
    direction: str = "external_to_supabase"
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    conflicts: int = 0
    local_edits_reverted: int = 0
    bytes_copied: int = 0
    chunks_compared: int = 0
    chunks_different: int = 0
    watermark_from: datetime | None = None
    watermark_to: datetime | None = None
    partition_key: str | None = None
    overlap_s: float | None = None
    duration_s: float = 0.0
    initial_load: bool = False
    merged_as_group: int = 0
    reconcile: ReconcileOutcome | None = None
    to_external: DirectionCounts | None = None
    to_supabase: DirectionCounts | None = None
    conflict_keys: tuple[str, ...] = ()
    winner_rule: str | None = None
    rejected_by_external: tuple[tuple[str, str], ...] = ()
    # set when a CDC stream (this slot) owns the table: the batch path only verified it
    cdc_owner: str | None = None
    # two-way runs: measured clock offset/uncertainty (gfx_sync.clock) and keys it could not order
    clock: tuple[tuple[str, float], ...] = ()
    clock_uncertain_keys: tuple[str, ...] = ()

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted

    @property
    def status(self) -> RunStatus:
        return "partial" if self.quarantined else "success"

    def metadata(self) -> dict[str, Any]:
        """The figures a data engineer charts (Dagster metadata, the CLI's JSON line)."""
        out: dict[str, Any] = {
            "rows_read": self.rows_read,
            "rows_inserted": self.inserted,
            "rows_updated": self.updated,
            "rows_deleted": self.deleted,
            "rows_quarantined": self.quarantined,
            "conflicts": self.conflicts,
            "local_edits_reverted": self.local_edits_reverted,
            "bytes_copied": self.bytes_copied,
            "duration_s": round(self.duration_s, 3),
        }
        if self.cdc_owner:
            out["cdc_owner"] = self.cdc_owner
        if self.chunks_compared:
            out["chunks_compared"] = self.chunks_compared
            out["chunks_different"] = self.chunks_different
        if self.watermark_from is not None:
            out["watermark_from"] = self.watermark_from.isoformat()
        if self.watermark_to is not None:
            out["watermark_to"] = self.watermark_to.isoformat()
        if self.overlap_s is not None:
            out["overlap_s"] = self.overlap_s
        out.update(dict(self.clock))
        if self.clock:
            out["clock_uncertain_conflicts"] = len(self.clock_uncertain_keys)
        return out

    def details(self) -> dict[str, Any]:
        """The run's particulars for ``sync_log.details`` (beside :meth:`metadata`)."""
        out: dict[str, Any] = {}
        if self.initial_load:
            out["initial_load"] = True
        if self.merged_as_group:
            out["merged_as_group"] = self.merged_as_group
        if self.reconcile is not None and self.reconcile.chunks_different:
            out["reconcile"] = {
                "copied": self.reconcile.copied,
                "deleted": self.reconcile.deleted_keys,
                "chunks_different": self.reconcile.chunks_different,
            }
        if self.to_external is not None:
            out["to_external"] = self.to_external.as_dict()
        if self.to_supabase is not None:
            out["to_supabase"] = self.to_supabase.as_dict()
        if self.to_external is not None or self.to_supabase is not None:
            out["conflict_keys"] = list(self.conflict_keys[:50])
            out["winner_rule"] = self.winner_rule
        if self.rejected_by_external:
            out["rejected_by_external"] = [list(r) for r in self.rejected_by_external[:50]]
        return out


@dataclass(frozen=True)
class RestoreReport:
    """What a restore changed (or, on a dry run, would change)."""

    table: str
    from_side: str
    to_side: str
    dry_run: bool
    rows_authoritative: int = 0
    rows_before: int = 0
    would_insert: int = 0
    would_update: int = 0
    would_delete: int = 0
    quarantined: int = 0
    safety_copy: str | None = None
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "from_side": self.from_side,
            "to_side": self.to_side,
            "dry_run": self.dry_run,
            "rows_authoritative": self.rows_authoritative,
            "rows_before": self.rows_before,
            "would_insert": self.would_insert,
            "would_update": self.would_update,
            "would_delete": self.would_delete,
            "quarantined": self.quarantined,
            "safety_copy": self.safety_copy,
            "duration_s": self.duration_s,
        }
