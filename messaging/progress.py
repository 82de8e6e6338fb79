"""What one execution has done so far (``RunProgress``, internal and mutable) and what it
returns (``RunSummary``, frozen)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class RunCounts:
    """``message_logs`` of one execution, by status, and their cost."""

    total: int
    ok: int
    failed: int
    cancelled: int
    pending: int
    cost: float


@dataclass
class RunProgress:
    """Counters and log lines gathered while an execution runs (written to ``workflow_runs``)."""

    workflow_run_id: str
    status: str
    resumed: bool = False
    duplicates_dropped: int = 0
    batches_sent: int = 0
    reconciled: int = 0
    rows_read: int = 0
    unmapped: list[str] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)

    def log(self, log: Callable[[str], None], message: str, level: str = "info") -> None:
        """Keep the line for ``workflow_runs.logs`` and pass it to the run's logger."""
        self.logs.append({"at": datetime.now(UTC).isoformat(), "level": level, "message": message})
        log(message)

    def summary(self, counts: RunCounts | None = None) -> RunSummary:
        c = counts or RunCounts(0, 0, 0, 0, 0, 0.0)
        return RunSummary(
            workflow_run_id=self.workflow_run_id,
            status=self.status,
            target_count=c.total,
            success_count=c.ok,
            failed_count=c.failed,
            cancelled_count=c.cancelled,
            pending_count=c.pending,
            total_cost=c.cost,
            duplicates_dropped=self.duplicates_dropped,
            batches_sent=self.batches_sent,
            reconciled=self.reconciled,
            resumed=self.resumed,
            unmapped=list(self.unmapped),
            rows_read=self.rows_read,
            logs=list(self.logs),
        )


@dataclass(frozen=True)
class RunSummary:
    """The outcome of one execution (``metadata()`` is what the asset reports)."""

    workflow_run_id: str
    status: str
    target_count: int = 0
    success_count: int = 0
    failed_count: int = 0
    cancelled_count: int = 0
    pending_count: int = 0
    total_cost: float = 0.0
    duplicates_dropped: int = 0
    batches_sent: int = 0
    reconciled: int = 0
    resumed: bool = False
    unmapped: list[str] = field(default_factory=list)
    rows_read: int = 0
    logs: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        sent = self.success_count
        attempted = sent + self.failed_count
        return {
            "workflow_run_id": self.workflow_run_id,
            "status": self.status,
            "targets": self.target_count,
            "sent": sent,
            "failed": self.failed_count,
            "cancelled": self.cancelled_count,
            "pending": self.pending_count,
            "success_rate": round(sent / attempted, 4) if attempted else 0.0,
            "cost_krw": round(self.total_cost, 2),
            "duplicates_dropped": self.duplicates_dropped,
            "batches_sent": self.batches_sent,
            "reconciled": self.reconciled,
            "resumed": self.resumed,
            "mysql_rows_read": self.rows_read,
            "unmapped_variables": ", ".join(self.unmapped) or "none",
        }
