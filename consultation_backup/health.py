"""Health of the sources (seed 004 "헬스체크: 1분마다"): one cheap probe each of Notion, Google
Drive and Supabase Storage, recorded in ``consultation_service_health``.

A probe is a single attempt with the resource's timeout (no retries, outside the breaker, so it
still looks when the breaker is open; Notion's probe takes its token from the shared rate
limit). Seed 004's alert levels become notifications: a service failing for 30 minutes is a
warning, every service failing at once is critical (one per outage, deduplicated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from consultation_backup.constants import DOMAIN
from resources.google_drive import GoogleDriveResource
from resources.notifications import notify
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

WARN_AFTER = timedelta(minutes=30)
SERVICES = ("notion", "google_drive", "supabase_storage")


@dataclass(frozen=True)
class Probe:
    """One probe's answer."""

    service: str
    healthy: bool
    latency_ms: int
    error: str | None = None


def _timed(service: str, check: Callable[[], Any]) -> Probe:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure is the answer of a probe
        text = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:300]
        return Probe(service, False, int((time.perf_counter() - started) * 1000), text)
    return Probe(service, True, int((time.perf_counter() - started) * 1000))


def probe_notion(notion: NotionResource, database_id: str) -> Probe:
    """``databases.retrieve`` of the customers database (one request of the shared budget)."""

    def check() -> None:
        if notion.caller.bucket is not None:
            notion.caller.bucket.acquire()
        notion.get_client().databases.retrieve(database_id=database_id)

    return _timed("notion", check)


def probe_drive(drive: GoogleDriveResource) -> Probe:
    """``files.get`` of the MSPharmHQ root folder (``files.list`` of one file without one)."""

    def check() -> None:
        files = drive.get_client().files()
        if drive.root_folder_id:
            request = files.get(fileId=drive.root_folder_id, fields="id", supportsAllDrives=True)
        else:
            request = files.list(pageSize=1, fields="files(id)")
        request.execute(num_retries=0)

    return _timed("google_drive", check)


def probe_storage(storage: SupabaseStorageResource) -> Probe:
    """``list_buckets``; without the service-role key Storage is degraded (seed 004: the
    database backup goes on), which counts as unhealthy."""
    if not storage.available:
        return Probe("supabase_storage", False, 0, storage.unavailable_reason)
    return _timed("supabase_storage", lambda: storage.get_client().list_buckets())


RECORD_SQL = """
INSERT INTO public.consultation_service_health AS h
  (service, healthy, latency_ms, error, consecutive_failures, unhealthy_since, last_healthy_at,
   checked_at)
VALUES (%(service)s, %(healthy)s, %(latency_ms)s, %(error)s,
        CASE WHEN %(healthy)s THEN 0 ELSE 1 END,
        CASE WHEN %(healthy)s THEN NULL ELSE now() END,
        CASE WHEN %(healthy)s THEN now() END, now())
ON CONFLICT (service) DO UPDATE SET
  healthy = EXCLUDED.healthy, latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error,
  consecutive_failures = CASE WHEN EXCLUDED.healthy THEN 0 ELSE h.consecutive_failures + 1 END,
  unhealthy_since = CASE WHEN EXCLUDED.healthy THEN NULL
                         ELSE coalesce(h.unhealthy_since, now()) END,
  last_healthy_at = CASE WHEN EXCLUDED.healthy THEN now() ELSE h.last_healthy_at END,
  checked_at = now()
RETURNING unhealthy_since
"""


def record(db: PostgresResource, probes: list[Probe], now: datetime | None = None) -> list[str]:
    """Store the probes and raise seed 004's alerts; return the alerts raised."""
    now = now or datetime.now(UTC)
    alerts: list[str] = []
    with db.transaction() as conn:
        since: dict[str, datetime | None] = {}
        for p in probes:
            row = conn.execute(
                RECORD_SQL,
                {
                    "service": p.service,
                    "healthy": p.healthy,
                    "latency_ms": p.latency_ms,
                    "error": p.error,
                },
            ).fetchone()
            since[p.service] = row[0] if row else None
        down = [p for p in probes if not p.healthy]
        if probes and len(down) == len(probes):
            first = min(s for s in since.values() if s is not None)
            key = f"health:all:{first.isoformat()}"
            if notify(
                conn,
                domain=DOMAIN,
                type="health",
                severity="critical",
                title="Notion, Google Drive and Supabase Storage all failing",
                message="; ".join(f"{p.service}: {p.error}" for p in down),
                metadata={"services": [p.service for p in down]},
                dedupe_key=key,
            ):
                alerts.append("critical:all")
        for p in down:
            started = since.get(p.service)
            if (
                started is not None
                and now - started >= WARN_AFTER
                and notify(
                    conn,
                    domain=DOMAIN,
                    type="health",
                    severity="warning",
                    title=f"{p.service} failing for 30 minutes or more",
                    message=p.error,
                    metadata={"service": p.service, "unhealthy_since": started.isoformat()},
                    dedupe_key=f"health:{p.service}:{started.isoformat()}",
                )
            ):
                alerts.append(f"warning:{p.service}")
    return alerts


def check_health(
    notion: NotionResource,
    drive: GoogleDriveResource,
    storage: SupabaseStorageResource,
    db: PostgresResource,
    customers_database_id: str,
) -> tuple[list[Probe], list[str]]:
    """Probe the three services and record the answers."""
    probes = [
        probe_notion(notion, customers_database_id),
        probe_drive(drive),
        probe_storage(storage),
    ]
    return probes, record(db, probes)
