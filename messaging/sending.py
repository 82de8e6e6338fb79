"""Sending an execution's pending messages through SOLAPI exactly once, settling unknown
outcomes by status lookup, and polling delivery status afterwards.

A batch's rows get ``send_attempted_at`` (committed) before the request; the request is never
repeated. Its outcome makes each row ``sent`` or ``failed``; a lost or ambiguous answer is
settled by ``reconcile_attempted`` (found at SOLAPI by idempotency key -> recorded; not found ->
cleared and sent again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from psycopg import Connection
from psycopg.rows import dict_row

from messaging import constants as C
from messaging.bookkeeping import cancel_for_quiet_hours
from messaging.models import Template, WorkflowConfigError
from messaging.progress import RunProgress
from messaging.transform import in_ad_quiet_hours, unit_cost
from resources.errors import PermanentError, ServiceUnavailable, TransientError
from resources.postgres import PostgresResource
from resources.solapi import (
    REQUEST_BUDGET_BYTES,
    FailedMessage,
    MessageStatus,
    SendOutcome,
    SolapiResource,
    split_by_size,
    within_budget_cheaply,
)

SOLAPI_TYPE = {"sms": "SMS", "lms": "LMS", "kakao": "ATA"}
AMBIGUOUS = (TransientError, ServiceUnavailable, httpx.TransportError)
# SOLAPI dates messages with its own clock, which may differ from ours by up to its 15-minute
# auth tolerance: the lookup after an ambiguous send starts that much earlier.
LOOKUP_MARGIN = timedelta(minutes=16)
MAX_STALLED_SENDS = 4  # consecutive ambiguous sends with nothing accepted before the run gives up
MAX_STATUS_MESSAGE = 500


@dataclass(frozen=True)
class Sent:
    idempotency_key: str
    message_id: str
    group_id: str


@dataclass(frozen=True)
class Refused:
    idempotency_key: str
    code: str
    message: str
    message_id: str | None


@dataclass(frozen=True)
class SendPlan:
    """How pending rows are sent: batch size, request byte budget, the quiet-hours clock."""

    chunk_size: int = C.SEND_CHUNK_MAX
    max_request_bytes: int = REQUEST_BUDGET_BYTES
    clock: Callable[[], datetime] | None = None


@dataclass(frozen=True)
class BatchResult:
    """One batch's recorded outcome."""

    accepted: int
    refused: int
    reconciled: int
    group_id: str


def solapi_message(
    row: Mapping[str, Any], template: Template, solapi: SolapiResource
) -> dict[str, Any]:
    """A claimed ``message_logs`` row as one SOLAPI message (idempotency key in customFields)."""
    msg: dict[str, Any] = {
        "to": row["recipient_phone"],
        "from": solapi.sender,
        "text": row["message_content"],
        "type": SOLAPI_TYPE[row["message_type"]],
        "customFields": {"idempotencyKey": row["idempotency_key"]},
    }
    if row["message_type"] == "kakao":
        variables = row["variables_used"] or {}
        msg["kakaoOptions"] = {
            "pfId": solapi.pf_id,
            "templateId": template.template_code,
            "variables": {f"#{{{k}}}": str(v) for k, v in variables.items()},
            "disableSms": False,
            **({"buttons": template.buttons} if template.buttons else {}),
        }
    return msg


def apply_results(
    conn: Connection[Any], sent: Iterable[Sent], refused: Iterable[Refused], cost: float
) -> None:
    """Record outcomes on rows still ``pending`` (a settled row is never changed again)."""
    sent, refused = list(sent), list(refused)
    if sent:
        conn.execute(
            """UPDATE public.message_logs m SET status = 'sent', provider_message_id = v.mid,
                      provider_group_id = v.gid, sent_at = now(), cost = %s,
                      error_code = NULL, error_message = NULL
               FROM (SELECT unnest(%s::text[]) AS k, unnest(%s::text[]) AS mid,
                            unnest(%s::text[]) AS gid) v
               WHERE m.idempotency_key = v.k AND m.status = 'pending'""",
            (
                cost,
                [s.idempotency_key for s in sent],
                [s.message_id for s in sent],
                [s.group_id for s in sent],
            ),
        )
    if refused:
        conn.execute(
            """UPDATE public.message_logs m SET status = 'failed', error_code = v.code,
                      error_message = v.msg, failed_at = now(),
                      provider_message_id = coalesce(v.mid, m.provider_message_id)
               FROM (SELECT unnest(%s::text[]) AS k, unnest(%s::text[]) AS code,
                            unnest(%s::text[]) AS msg, unnest(%s::text[]) AS mid) v
               WHERE m.idempotency_key = v.k AND m.status = 'pending'""",
            (
                [f.idempotency_key for f in refused],
                [f.code for f in refused],
                [f.message for f in refused],
                [f.message_id for f in refused],
            ),
        )


def _refused(failed: FailedMessage, key: str) -> Refused:
    return Refused(
        key, str(failed.status_code), failed.status_message[:MAX_STATUS_MESSAGE], failed.message_id
    )


def _clear_attempts(db: PostgresResource, keys: list[str]) -> None:
    """Hand rows back to a later batch (their send was not made, or not accepted)."""
    db.execute(
        "UPDATE public.message_logs SET send_attempted_at = NULL WHERE idempotency_key = ANY(%s)",
        (keys,),
    )


def _attempted_pending(db: PostgresResource, run_id: str) -> tuple[datetime | None, set[str]]:
    where = (
        " FROM public.message_logs WHERE workflow_run_id = %s AND status = 'pending'"
        " AND send_attempted_at IS NOT NULL"
    )
    oldest = db.fetch_value("SELECT min(send_attempted_at)" + where, (run_id,))
    if oldest is None:
        return None, set()
    keys = {r["idempotency_key"] for r in db.fetch_all("SELECT idempotency_key" + where, (run_id,))}
    return oldest, keys


def _found_at_solapi(
    records: Iterable[MessageStatus], keys: set[str]
) -> tuple[dict[str, Sent], dict[str, Refused]]:
    found: dict[str, Sent] = {}
    refused: dict[str, Refused] = {}
    for record in records:
        key = record.idempotency_key
        if key is None or key not in keys:
            continue
        if record.accepted:
            found[key] = Sent(key, record.message_id, record.group_id)
            refused.pop(key, None)
        elif key not in found:
            # SOLAPI lists refused messages too: that attempt failed, it is not resent.
            refused[key] = Refused(
                key,
                record.status_code or "",
                record.status_message[:MAX_STATUS_MESSAGE],
                record.message_id,
            )
    return found, refused


def reconcile_attempted(
    db: PostgresResource, solapi: SolapiResource, run_id: str, message_type_cost: float
) -> int:
    """Settle rows whose send was attempted but whose outcome is unknown, by status lookup.

    Found at SOLAPI (by ``customFields.idempotencyKey``) accepted (2000/3000/4000) -> ``sent``;
    found refused (any other code) -> ``failed`` with that code; not found -> attempt cleared so
    the row is sent again. Returns how many rows were settled.
    """
    oldest, keys = _attempted_pending(db, run_id)
    if oldest is None:
        return 0
    records = solapi.iter_messages(start_date=oldest - LOOKUP_MARGIN)
    found, refused = _found_at_solapi(records, keys)
    keys -= set(found) | set(refused)
    with db.transaction() as conn:
        apply_results(conn, found.values(), refused.values(), message_type_cost)
        if keys:
            conn.execute(
                "UPDATE public.message_logs SET send_attempted_at = NULL"
                " WHERE idempotency_key = ANY(%s) AND status = 'pending'",
                (list(keys),),
            )
    return len(found) + len(refused)


def claim_batch(db: PostgresResource, run_id: str, size: int) -> list[dict[str, Any]]:
    """Mark the next ``size`` unsent pending rows as attempted (committed) and return them."""
    with db.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """UPDATE public.message_logs SET send_attempted_at = now()
               WHERE id IN (SELECT id FROM public.message_logs
                            WHERE workflow_run_id = %s AND status = 'pending'
                              AND send_attempted_at IS NULL
                            ORDER BY idempotency_key LIMIT %s FOR UPDATE)
               RETURNING idempotency_key, recipient_phone, message_content, message_type,
                         variables_used""",
            (run_id, size),
        )
        return cur.fetchall()


def fit_request(
    db: PostgresResource,
    rows: list[dict[str, Any]],
    payload: list[dict[str, Any]],
    max_bytes: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """SOLAPI takes at most 15 MB per request: keep what fits, hand the rest back."""
    if within_budget_cheaply(payload, max_bytes):
        return rows, payload
    first = split_by_size(payload, max_bytes)[0]
    if len(first) < len(payload):
        _clear_attempts(db, [r["idempotency_key"] for r in rows[len(first) :]])
        return rows[: len(first)], first
    return rows, payload


def settle_response(
    db: PostgresResource,
    solapi: SolapiResource,
    run_id: str,
    outcome: SendOutcome,
    cost: float,
) -> BatchResult:
    """Record a send's answer; what the answer does not account for is settled by lookup."""
    sent = [
        Sent(m.idempotency_key, m.message_id, outcome.group_id)
        for m in outcome.accepted
        if m.idempotency_key
    ]
    refused = [_refused(f, f.idempotency_key) for f in outcome.failed if f.idempotency_key]
    with db.transaction() as conn:
        apply_results(conn, sent, refused, cost)
    reconciled = 0
    if outcome.accounted < outcome.requested:
        # The 200 did not list every message (no messageList): settle the rest by lookup.
        reconciled = reconcile_attempted(db, solapi, run_id, cost)
    return BatchResult(len(outcome.accepted), len(outcome.failed), reconciled, outcome.group_id)


def _quiet_hours_stop(
    db: PostgresResource,
    run_id: str,
    template: Template,
    plan: SendPlan,
    progress: RunProgress,
    log: Callable[[str], None],
) -> bool:
    """A long advertising send that reaches 21:00 Asia/Seoul stops: the rest is cancelled."""
    now = plan.clock() if plan.clock is not None else datetime.now(UTC)
    if template.category != "promotion" or not in_ad_quiet_hours(now):
        return False
    n = cancel_for_quiet_hours(db, run_id)
    if n:
        progress.log(
            log,
            f"{n} advertising message(s) cancelled: quiet hours began during the send",
            "warning",
        )
    return True


def _after_ambiguous_send(
    db: PostgresResource,
    solapi: SolapiResource,
    run_id: str,
    cost: float,
    exc: Exception,
    batch_no: int,
    stalled: int,
    progress: RunProgress,
    log: Callable[[str], None],
) -> int:
    """Settle an ambiguous send by lookup; returns the new count of stalled sends in a row.

    Raises:
        ServiceUnavailable: ``MAX_STALLED_SENDS`` sends in a row got nothing accepted.
    """
    progress.log(
        log,
        f"batch {batch_no}: outcome unknown ({type(exc).__name__}: {str(exc)[:120]}); "
        "reconciling by status lookup",
        "warning",
    )
    found = reconcile_attempted(db, solapi, run_id, cost)
    progress.reconciled += found
    stalled = 0 if found else stalled + 1
    if stalled >= MAX_STALLED_SENDS:
        raise ServiceUnavailable(
            "solapi",
            f"{stalled} consecutive send requests failed without being "
            "accepted; the run stops (a retry resumes where it stopped)",
        ) from exc
    if stalled:
        time.sleep(min(0.5 * 2 ** (stalled - 1), 10.0))  # back off while nothing gets through
    return stalled


def send_pending(
    db: PostgresResource,
    solapi: SolapiResource,
    run_id: str,
    template: Template,
    plan: SendPlan,
    progress: RunProgress,
    log: Callable[[str], None],
) -> None:
    """Send every unsent pending row of the run in batches, each exactly once.

    Raises:
        WorkflowConfigError: Alimtalk without the Kakao channel profile id.
        PermanentError: SOLAPI refused a request as a whole (its rows are handed back).
        ServiceUnavailable: sends keep failing without anything accepted.
    """
    if template.message_type == "kakao" and not solapi.pf_id:
        raise WorkflowConfigError("Alimtalk needs the Kakao channel profile id (SOLAPI_PF_ID)")
    cost = unit_cost(template.message_type)
    progress.reconciled += reconcile_attempted(db, solapi, run_id, cost)
    size = max(1, min(plan.chunk_size, C.SEND_CHUNK_MAX))
    batch_no = stalled = 0
    while not _quiet_hours_stop(db, run_id, template, plan, progress, log):
        rows = claim_batch(db, run_id, size)
        if not rows:
            return
        batch_no += 1
        payload = [solapi_message(r, template, solapi) for r in rows]
        rows, payload = fit_request(db, rows, payload, plan.max_request_bytes)
        try:
            outcome = solapi.send_many_detail(payload)
        except PermanentError:
            # The request as a whole was refused (auth, validation): nothing was accepted.
            _clear_attempts(db, [r["idempotency_key"] for r in rows])
            raise
        except AMBIGUOUS as exc:
            stalled = _after_ambiguous_send(
                db, solapi, run_id, cost, exc, batch_no, stalled, progress, log
            )
            continue
        stalled = 0
        result = settle_response(db, solapi, run_id, outcome, cost)
        progress.reconciled += result.reconciled
        progress.batches_sent += 1
        progress.log(
            log,
            f"batch {batch_no}: {result.accepted} accepted, {result.refused} refused"
            f" (group {result.group_id})",
        )
