"""Slot health: lag in bytes and seconds, WAL retained by an inactive slot, alerts and
notifications.

An inactive slot that keeps retaining WAL is the most common way CDC takes a production
database down (its disk fills). When that passes a threshold the check fails and ONE row is
written to ``public.notifications`` (and an open alert in ``platform.gfx_cdc_alerts`` so the
next tick does not notify again); the alert clears when the slot recovers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import psycopg

from gfx_sync.cdc.slot import slot_info
from gfx_sync.cdc.target import read_state
from resources.notifications import notify

MB = 1024 * 1024

# warnings that also notify (once per episode); lag warnings only fail the check
NOTIFIED_WARNINGS = frozenset({"wal_status", "safe_wal_size"})


@dataclass(frozen=True)
class Thresholds:
    max_lag_bytes: int = 256 * MB
    max_lag_seconds: float = 300.0  # the CDC tables' freshness window (5 minutes)
    max_inactive_retained_bytes: int = 1024 * MB
    caught_up_bytes: int = 1 * MB  # below this the consumer counts as caught up
    # safe_wal_size (max_slot_wal_keep_size set): WAL that can still be written before the slot
    # is lost; below this a WARN is raised
    min_safe_wal_size: int = 1024 * MB


@dataclass(frozen=True)
class SlotHealth:
    slot_name: str
    exists: bool
    active: bool = False
    wal_status: str | None = None
    lag_bytes: int = 0
    retained_bytes: int = 0
    safe_wal_size: int | None = None
    lag_seconds: float = 0.0
    last_commit_lsn: str | None = None
    last_applied_at: str | None = None
    last_apply_lag_ms: float | None = None
    stopped_reason: str | None = None

    def metadata(self) -> dict[str, object]:
        return {
            f"slot_{k}" if not k.startswith("slot") else k: v
            for k, v in asdict(self).items()
            if v is not None
        }


def slot_health(
    source: psycopg.Connection,
    target: psycopg.Connection,
    slot_name: str,
    thresholds: Thresholds = Thresholds(),
) -> SlotHealth:
    info = slot_info(source, slot_name)
    state = read_state(target, slot_name)
    if info is None:
        return SlotHealth(slot_name, False, last_commit_lsn=state and state["last_commit_lsn"])
    lag_seconds = 0.0
    if info.active and info.active_pid:
        row = source.execute(
            "SELECT extract(epoch FROM coalesce(flush_lag, interval '0'))::float8 "
            "FROM pg_stat_replication WHERE pid = %s",
            (info.active_pid,),
        ).fetchone()
        lag_seconds = float(row[0]) if row else 0.0
    if info.lag_bytes > thresholds.caught_up_bytes:
        row = target.execute(
            "SELECT extract(epoch FROM now() - coalesce(last_applied_at,"
            " snapshot_completed_at))::float8 "
            "FROM platform.gfx_cdc_state WHERE slot_name = %s",
            (slot_name,),
        ).fetchone()
        if row and row[0] is not None:
            lag_seconds = max(lag_seconds, float(row[0]))
    return SlotHealth(
        slot_name,
        True,
        info.active,
        info.wal_status,
        info.lag_bytes,
        info.retained_bytes,
        info.safe_wal_size,
        round(lag_seconds, 3),
        state and state["last_commit_lsn"],
        state and state["last_applied_at"] and state["last_applied_at"].isoformat(),
        state and state["last_apply_lag_ms"],
        state and state["stopped_reason"],
    )


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    message: str
    severity: str = "error"  # 'warning' | 'error' | 'critical'


def evaluate(h: SlotHealth, t: Thresholds) -> list[Verdict]:
    """The slot's verdicts: lag (bytes and seconds), WAL retention while inactive, slot lost,
    stopped."""
    if not h.exists:
        return [
            Verdict(
                "slot_missing",
                False,
                f"replication slot {h.slot_name} does not exist (run the CDC init)",
                "error",
            )
        ]
    out = [
        Verdict(
            "lag_bytes",
            h.lag_bytes <= t.max_lag_bytes,
            f"{h.lag_bytes} bytes of WAL not yet applied (threshold {t.max_lag_bytes})",
            "warning",
        ),
        Verdict(
            "lag_seconds",
            h.lag_seconds <= t.max_lag_seconds,
            f"lag {h.lag_seconds:.1f}s (threshold {t.max_lag_seconds:.0f}s)",
            "warning",
        ),
        Verdict(
            "inactive_slot_wal",
            h.active or h.retained_bytes <= t.max_inactive_retained_bytes,
            f"slot {'active' if h.active else 'INACTIVE'} retaining {h.retained_bytes} bytes of"
            f" WAL "
            f"(threshold {t.max_inactive_retained_bytes} while inactive)",
            "critical",
        ),
        Verdict("slot_lost", h.wal_status != "lost", f"wal_status={h.wal_status}", "critical"),
        # long before 'lost': 'extended' = the slot keeps WAL past max_wal_size, 'unreserved' =
        # the next checkpoint may remove what it needs (max_slot_wal_keep_size)
        Verdict(
            "wal_status",
            h.wal_status not in ("extended", "unreserved"),
            f"slot {h.slot_name} wal_status={h.wal_status}: it retains WAL beyond max_wal_size"
            " (extended) or is about to lose it (unreserved); drain or drop it before it is lost",
            "warning",
        ),
        Verdict(
            "safe_wal_size",
            h.safe_wal_size is None or h.safe_wal_size >= t.min_safe_wal_size,
            f"slot {h.slot_name}: {h.safe_wal_size} bytes of WAL can still be written before it"
            f" is lost (warning below {t.min_safe_wal_size})",
            "warning",
        ),
    ]
    if h.stopped_reason:
        out.append(Verdict("stopped", False, f"stream stopped: {h.stopped_reason}", "error"))
    return out


def record_alerts(target: psycopg.Connection, h: SlotHealth, verdicts: list[Verdict]) -> list[str]:
    """Open an alert (and one notification) per newly failing verdict; clear recovered ones.
    Commits.

    Returns the names of the alerts raised now.
    """
    raised: list[str] = []
    has_notifications = target.execute(
        "SELECT to_regclass('public.notifications') IS NOT NULL"
    ).fetchone()[0]
    for v in verdicts:
        open_row = target.execute(
            "SELECT 1 FROM platform.gfx_cdc_alerts WHERE slot_name = %s AND alert = %s AND"
            " cleared_at IS NULL",
            (h.slot_name, v.name),
        ).fetchone()
        if v.passed:
            if open_row:
                target.execute(
                    "UPDATE platform.gfx_cdc_alerts SET cleared_at = now() "
                    "WHERE slot_name = %s AND alert = %s AND cleared_at IS NULL",
                    (h.slot_name, v.name),
                )
            continue
        if open_row or (v.severity == "warning" and v.name not in NOTIFIED_WARNINGS):
            continue
        details = json.dumps(h.metadata(), default=str)
        target.execute(
            "INSERT INTO platform.gfx_cdc_alerts (slot_name, alert, message, details) VALUES (%s,"
            " %s, %s, %s)",
            (h.slot_name, v.name, v.message, details),
        )
        if has_notifications:
            notify(
                target,
                domain="gfx_sync",
                type=f"cdc_{v.name}",
                severity=v.severity,  # type: ignore[arg-type]
                title=f"CDC 슬롯 경고: {h.slot_name} ({v.name})",
                message=v.message,
                metadata=h.metadata(),
                dedupe_key=f"cdc:{h.slot_name}:{v.name}:{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}",
            )
        raised.append(v.name)
    target.commit()
    return raised
