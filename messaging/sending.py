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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from psycopg import Connection
from psycopg import Error as PsycopgError
from psycopg.rows import dict_row

from messaging import constants as C
from messaging.bookkeeping import (
    cancel_for_quiet_hours,
    cancel_unsent,
    defer_unsent,
    handed_back,
)
from messaging.models import Template, WorkflowConfigError
from messaging.progress import RunProgress
from messaging.suppression import cancel_unwanted
from messaging.transform import in_ad_quiet_hours, quiet_hours_end, unit_cost
from resources.errors import PermanentError, ServiceUnavailable, TransientError
from resources.notifications import notify
from resources.postgres import PostgresResource
from resources.solapi import (
    REQUEST_BUDGET_BYTES,
    FailedMessage,
    MessageStatus,
    Registered,
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
    # Alimtalk: let SOLAPI substitute the rendered SMS/LMS fallback text when Kakao fails
    fallback: bool = True
    # a group whose send answer is unknown is read this long (the request may still be
    # processing at SOLAPI) before it is deleted and its rows handed back
    settle_wait_s: float = 120.0
    settle_poll_s: float = 0.5
    frequency_cap: int | None = None  # advertising messages per recipient per day (settings)
    quiet_hours: str = "defer"  # advertising reaching quiet hours: "defer" to 08:00 or "drop"

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)


@dataclass(frozen=True)
class BatchResult:
    """One batch's recorded outcome."""

    accepted: int
    refused: int
    reconciled: int
    group_id: str
    pages: tuple[int, ...] = ()  # heap pages of the rows the recording wrote (``set_hints``)


def solapi_message(
    row: Mapping[str, Any], template: Template, solapi: SolapiResource, fallback: bool = True
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
        if fallback and row.get("fallback_content"):
            msg["text"] = row["fallback_content"]
        variables = row["variables_used"] or {}
        msg["kakaoOptions"] = {
            "pfId": solapi.pf_id,
            "templateId": template.template_code,
            "variables": {f"#{{{k}}}": str(v) for k, v in variables.items()},
            # SOLAPI substitutes SMS/LMS (the text below) only when disableSms is false; the
            # text is the rendered, EUC-KR length-checked fallback, or no substitution at all
            "disableSms": not (fallback and row.get("fallback_content")),
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
        handed_back(
            "UPDATE public.message_logs SET send_attempted_at = NULL, provider_group_id = NULL"
            " WHERE idempotency_key = ANY(%s)"
        ),
        (keys,),
    )


def _attempted_pending(db: PostgresResource, run_id: str) -> tuple[datetime | None, set[str]]:
    where = (
        " FROM public.message_logs WHERE workflow_run_id = %s AND status = 'pending'"
        " AND send_attempted_at IS NOT NULL AND provider_group_id IS NULL"
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
                handed_back(
                    "UPDATE public.message_logs SET send_attempted_at = NULL"
                    " WHERE idempotency_key = ANY(%s) AND status = 'pending'"
                    " AND provider_group_id IS NULL"
                ),
                (list(keys),),
            )
    return len(found) + len(refused)


def claim_batch(
    db: PostgresResource,
    run_id: str,
    size: int,
    group_id: str | None = None,
    now: datetime | None = None,
    after: int = -1,
) -> list[dict[str, Any]]:
    """Mark the next ``size`` unsent pending rows (load position ``run_seq`` above ``after``) as
    attempted (committed) and return them; with ``group_id`` the group is recorded first and
    the rows are assigned to it (same commit).

    Rows are claimed in the order the run's bulk load wrote them, so a batch's rows sit on
    contiguous heap pages (idempotency keys are hashes: a key-ordered batch touched a random
    page per row). Claiming from a position keeps each claim the size of a batch: scanning from
    the start would walk every row already sent (a 1,000,000-row run). The rows are locked and
    then updated by their physical address only (no probe of the random-UUID primary key; a
    locked row cannot move before the update, and with nothing else in the outer WHERE the
    plan is a TID scan whatever the table's statistics say)."""
    with db.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
        if group_id is not None:
            cur.execute(
                "INSERT INTO public.messaging_send_groups (provider_group_id, workflow_run_id)"
                " VALUES (%s, %s)",
                (group_id, run_id),
            )
        cur.execute(
            """UPDATE public.message_logs SET send_attempted_at = now(), provider_group_id = %s
               WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM public.message_logs
                   WHERE workflow_run_id = %s AND status = 'pending'
                     AND send_attempted_at IS NULL
                     AND (not_before IS NULL OR not_before <= %s)
                     AND run_seq > %s
                   ORDER BY run_seq LIMIT %s FOR UPDATE))
               RETURNING idempotency_key, recipient_phone, message_content, message_type,
                         variables_used, fallback_content, run_seq""",
            (group_id, run_id, now or datetime.now(UTC), after, size),
        )
        rows = cur.fetchall()
        if group_id is not None:
            # the group's rows are found by these keys (unique index), not by an index on
            # provider_group_id: with none, the claim's write of a row can be a HOT update
            cur.execute(
                "UPDATE public.messaging_send_groups SET message_count = %s, claimed_keys = %s"
                " WHERE provider_group_id = %s",
                (len(rows), [r["idempotency_key"] for r in rows], group_id),
            )
        return rows


@dataclass
class ClaimPosition:
    """Where the next claim starts (the highest load position claimed so far); rows handed
    back (or deferred) below it are picked up by a sweep from the lowest such position once the
    rows above run out."""

    after: int = -1


def _has_sendable(
    db: PostgresResource, run_id: str, now: datetime, position: ClaimPosition
) -> bool:
    def exists(after: int) -> bool:
        return bool(
            db.fetch_value(
                "SELECT EXISTS (SELECT 1 FROM public.message_logs WHERE workflow_run_id = %s"
                " AND status = 'pending' AND send_attempted_at IS NULL"
                " AND (not_before IS NULL OR not_before <= %s) AND run_seq > %s)",
                (run_id, now, after),
            )
        )

    if exists(position.after):
        return True
    if position.after < 0:
        return False  # that was the whole run
    start = _sweep_start(db, run_id)
    if start is not None and start < position.after and exists(start):
        position.after = start  # sweep: rows handed back (or come due) below the position
        return True
    return False


def _sweep_start(db: PostgresResource, run_id: str) -> int | None:
    """Where sendable rows below the claim position can sit: above the lowest position handed
    back (or deferred) since the last sweep; the mark is taken. None: nowhere."""
    with db.transaction() as conn:
        row = conn.execute(
            "UPDATE public.workflow_runs r SET handed_back_from = NULL"
            " FROM (SELECT id, handed_back_from FROM public.workflow_runs WHERE id = %s"
            " FOR UPDATE) old WHERE r.id = old.id AND old.handed_back_from IS NOT NULL"
            " RETURNING old.handed_back_from",
            (run_id,),
        ).fetchone()
    return None if row is None else int(row[0]) - 1


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
    """Record a send-many answer; what the answer does not account for is settled by lookup."""
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


# -- the group flow ----------------------------------------------------------------------------
def group_rows(conn: Connection[Any], group_id: str) -> tuple[str, tuple[Any, ...]]:
    """WHERE clause (and parameters) for a group's pending ``message_logs`` rows: by the keys the
    claim stored on the group row (unique index, the batch's size); a group claimed before those
    keys were stored is found by its run's pending rows."""
    row = conn.execute(
        "SELECT claimed_keys, workflow_run_id FROM public.messaging_send_groups"
        " WHERE provider_group_id = %s",
        (group_id,),
    ).fetchone()
    if row is not None and row[0] is not None:
        return (
            "idempotency_key = ANY(%s) AND provider_group_id = %s AND status = 'pending'",
            (list(row[0]), group_id),
        )
    if row is not None:
        return (
            "workflow_run_id = %s AND provider_group_id = %s AND status = 'pending'",
            (row[1], group_id),
        )
    return "provider_group_id = %s AND status = 'pending'", (group_id,)


def record_registration(
    db: PostgresResource, group_id: str, rows: list[dict[str, Any]], registered: list[Registered]
) -> tuple[int, int]:
    """Store each row's registration: refused ones are ``failed`` (never sent), accepted ones keep
    their message id and stay ``pending`` until the group is sent. Returns (accepted, refused)."""
    ok_keys, ok_ids, bad = [], [], []
    for row, reg in zip(rows, registered, strict=True):
        if reg.accepted:
            ok_keys.append(row["idempotency_key"])
            ok_ids.append(reg.message_id)
        else:
            bad.append(
                Refused(
                    row["idempotency_key"],
                    reg.status_code or "",
                    reg.status_message[:MAX_STATUS_MESSAGE],
                    reg.message_id or None,
                )
            )
    with db.transaction() as conn:
        apply_results(conn, [], bad, 0.0)
        # the accepted ids go on the group row (one write), not onto every message row: each
        # write of a message_logs row inserts into all of its indexes (issue 13, linear sends)
        conn.execute(
            "UPDATE public.messaging_send_groups SET state = 'sending', send_requested_at = now(),"
            " registered_keys = %s, registered_ids = %s"
            " WHERE provider_group_id = %s AND state = 'created'",
            (ok_keys, ok_ids, group_id),
        )
    return len(ok_keys), len(bad)


def settle_group(db: PostgresResource, group_id: str, cost: float) -> BatchResult:
    """The group went out: its registered rows are ``sent`` with their message ids, in one write
    per row (the seam the crash tests hook). Groups registered before the ids were kept on the
    group row (``registered_keys`` NULL) have the ids on their rows already."""
    with db.transaction() as conn:
        # the count and the distinct heap pages written come back as one row (not a row each)
        n, pages = conn.execute(
            """WITH written AS (
                 UPDATE public.message_logs m SET status = 'sent', sent_at = now(), cost = %s,
                        error_code = NULL, error_message = NULL, provider_message_id = v.mid
                 FROM (SELECT unnest(g.registered_keys) AS k, unnest(g.registered_ids) AS mid
                       FROM public.messaging_send_groups g WHERE g.provider_group_id = %s) v
                 WHERE m.idempotency_key = v.k AND m.provider_group_id = %s
                   AND m.status = 'pending'
                 RETURNING (m.ctid::text::point)[0]::bigint AS page)
               SELECT count(*), coalesce(array_agg(DISTINCT page ORDER BY page), '{}')
               FROM written""",
            (cost, group_id, group_id),
        ).fetchone()
        legacy = conn.execute(
            "SELECT registered_keys IS NULL FROM public.messaging_send_groups"
            " WHERE provider_group_id = %s",
            (group_id,),
        ).fetchone()
        if legacy is None or legacy[0]:  # registered before the ids were kept on the group row
            where, params = group_rows(conn, group_id)
            n += conn.execute(
                "UPDATE public.message_logs SET status = 'sent', sent_at = now(), cost = %s,"
                " error_code = NULL, error_message = NULL"
                f" WHERE {where} AND provider_message_id IS NOT NULL",
                (cost, *params),
            ).rowcount
        conn.execute(
            "UPDATE public.messaging_send_groups SET state = 'sent', settled_at = now(),"
            " registered_keys = NULL, registered_ids = NULL WHERE provider_group_id = %s",
            (group_id,),
        )
    return BatchResult(n, 0, 0, group_id, tuple(pages))


HINT_RANGES_MAX = 32  # more runs of pages than this: the rows are scattered, left to later readers


def page_ranges(pages: Iterable[int], most: int = HINT_RANGES_MAX) -> list[tuple[int, int]]:
    """Sorted heap pages as (first, last) runs of consecutive pages; none when there are more
    than ``most`` runs (a scan each would cost more than the hints save)."""
    ranges: list[tuple[int, int]] = []
    for page in sorted(set(pages)):
        if ranges and page == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], page)
        else:
            ranges.append((page, page))
    return ranges if len(ranges) <= most else []


def set_hints(db: PostgresResource, pages: Iterable[int]) -> None:
    """Read the given ``message_logs`` heap pages once, right after the transaction that wrote
    them committed, while they are still in shared buffers: the first reader of a committed row
    version records on the page that its transaction committed (hint bits) and dirties the page.

    Without this the first reader is the run's closing count, long after the pages were written
    out: on a 1,000,000-row run (1 GB of heap against 128 MB of shared buffers) it dirtied every
    page again and had to write them out itself (the benchmark's closing phase went from 2.75 s
    to 1.58 s). Best effort: a later reader sets what this could not."""
    ranges = page_ranges(pages)
    if not ranges:
        return
    with suppress(PsycopgError), db.transaction() as conn, conn.pipeline():
        for first, last in ranges:  # a TID range scan each: every tuple of those pages
            conn.execute(
                "SELECT count(*) FROM public.message_logs"
                " WHERE ctid >= format('(%%s,0)', %s::bigint)::tid"
                " AND ctid < format('(%%s,0)', %s::bigint)::tid",
                (first, last + 1),
            )


def abandon_group(
    db: PostgresResource, solapi: SolapiResource, group_id: str, note: str, delete: bool = True
) -> int:
    """A group that was never sent and never will be: its rows go back to the queue. Deleting
    it at SOLAPI is hygiene only when its send was never requested. Returns rows handed back."""
    if delete:
        with suppress(*AMBIGUOUS, PermanentError):
            solapi.delete_group(group_id)
    with db.transaction() as conn:
        where, params = group_rows(conn, group_id)
        back = conn.execute(
            handed_back(
                "UPDATE public.message_logs SET send_attempted_at = NULL,"
                f" provider_group_id = NULL, provider_message_id = NULL WHERE {where}"
            ),
            params,
        ).fetchone()
        n = int(back[0]) if back else 0
        conn.execute(
            "UPDATE public.messaging_send_groups SET state = 'abandoned', settled_at = now(),"
            " note = %s, registered_keys = NULL, registered_ids = NULL"
            " WHERE provider_group_id = %s",
            (note[:500], group_id),
        )
    return n


def _refusals_listed(db: PostgresResource, solapi: SolapiResource, group_id: str) -> list[Refused]:
    """Rows of a sent group that SOLAPI lists as refused (the list may lag: unlisted rows count
    as sent, since they were registered)."""
    with db.transaction() as conn:
        where, params = group_rows(conn, group_id)
        keys = {
            r[0]
            for r in conn.execute(
                f"SELECT idempotency_key FROM public.message_logs WHERE {where}", params
            ).fetchall()
        }
    _found, refused = _found_at_solapi(solapi.iter_group_messages(group_id), keys)
    return list(refused.values())


def settle_unknown_group(
    db: PostgresResource,
    solapi: SolapiResource,
    group_id: str,
    cost: float,
    plan: SendPlan,
) -> tuple[str, int]:
    """Settle a group whose send was requested but whose answer is unknown, by reading the
    group: sent -> rows ``sent`` (refusals SOLAPI lists -> ``failed``); still ``PENDING`` after
    ``plan.settle_wait_s`` (the request may still be processing) -> deleted, so it can never go
    out, then its rows are handed back. Never sends the group again. Returns the outcome and
    the rows settled.

    Raises:
        TransientError / ServiceUnavailable: SOLAPI cannot be read; the group stays ``sending``.
    """
    deadline = time.monotonic() + plan.settle_wait_s
    while True:
        info = solapi.group_info(group_id)
        if not info.was_sent and info.status == "PENDING" and time.monotonic() < deadline:
            time.sleep(plan.settle_poll_s)
            continue
        if not info.was_sent and info.status != "DELETED":
            info = solapi.delete_group(group_id)  # after this it can never be sent
        if info.was_sent:
            refused = _refusals_listed(db, solapi, group_id)
            if refused:
                with db.transaction() as conn:
                    apply_results(conn, [], refused, 0.0)
            settled = settle_group(db, group_id, cost)
            return "sent", settled.accepted + len(refused)
        abandon_group(db, solapi, group_id, "send not processed; group deleted", delete=False)
        with db.transaction() as conn:
            notify(
                conn,
                domain=C.DOMAIN,
                type="send_group_deleted",
                severity="warning",
                title="A SOLAPI group whose send stayed unanswered was deleted and re-queued",
                message=(
                    f"group {group_id}: still PENDING {plan.settle_wait_s:.0f}s after its send was"
                    " requested; deleted (it can never go out) and its messages re-queued"
                ),
                metadata={"provider_group_id": group_id},
                dedupe_key=f"send_group_deleted:{group_id}",
            )
        return "not sent", 0


def settle_open_groups(
    db: PostgresResource, solapi: SolapiResource, run_id: str, cost: float, plan: SendPlan
) -> int:
    """A resumed run first settles the groups a previous attempt left open: never-sent ones are
    handed back, ones whose send was requested are read. Returns the rows settled by reading."""
    groups = db.fetch_all(
        "SELECT provider_group_id, state FROM public.messaging_send_groups"
        " WHERE workflow_run_id = %s AND state IN ('created', 'sending') ORDER BY created_at",
        (run_id,),
    )
    settled = 0
    for g in groups:
        if g["state"] == "created":
            abandon_group(db, solapi, g["provider_group_id"], "left unsent by a stopped attempt")
        else:
            settled += settle_unknown_group(db, solapi, g["provider_group_id"], cost, plan)[1]
    return settled


def _stop_reason(db: PostgresResource, run_id: str) -> tuple[str, str] | None:
    """(error code, reason) when the run was cancelled or its workflow paused/archived."""
    row = db.fetch_one(
        "SELECT r.cancel_requested_at, r.cancel_requested_by, w.status AS workflow_status"
        " FROM public.workflow_runs r JOIN public.workflows w ON w.id = r.workflow_id"
        " WHERE r.id = %s",
        (run_id,),
    )
    if row is None:
        return None
    if row["cancel_requested_at"] is not None:
        return C.ERR_CANCELLED, f"send cancelled by {row['cancel_requested_by']}"
    if row["workflow_status"] in ("paused", "archived"):
        return C.ERR_PAUSED, f"workflow {row['workflow_status']} during the send"
    return None


def _stop_due(db: PostgresResource, run_id: str, template: Template, plan: SendPlan) -> bool:
    """Whether the checks between batches would stop the run now (nothing is changed)."""
    if template.category == "promotion" and in_ad_quiet_hours(plan.now()):
        return True
    return _stop_reason(db, run_id) is not None


def _stop_requested(
    db: PostgresResource, run_id: str, progress: RunProgress, log: Callable[[str], None]
) -> bool:
    """Between batches: a cancelled run or a paused/archived workflow sends no further batch
    (its unsent rows are cancelled with the reason)."""
    stop = _stop_reason(db, run_id)
    if stop is None:
        return False
    code, reason = stop
    n = cancel_unsent(db, run_id, code, reason)
    progress.log(log, f"{reason}: {n} unsent message(s) cancelled", "warning")
    return True


def _quiet_hours_stop(
    db: PostgresResource,
    run_id: str,
    template: Template,
    plan: SendPlan,
    progress: RunProgress,
    log: Callable[[str], None],
) -> bool:
    """A long advertising send that reaches 21:00 Asia/Seoul stops: the rest is held until
    08:00 (or cancelled when the workflow drops quiet-hour advertising)."""
    now = plan.now()
    if template.category != "promotion" or not in_ad_quiet_hours(now):
        return False
    if plan.quiet_hours == "drop":
        n = cancel_for_quiet_hours(db, run_id)
        what = "cancelled"
    else:
        n = defer_unsent(db, run_id, quiet_hours_end(now))
        what = "held until 08:00 Asia/Seoul"
    if n:
        progress.log(
            log, f"{n} advertising message(s) {what}: quiet hours began during the send", "warning"
        )
    return True


def _without_unwanted(
    db: PostgresResource,
    rows: list[dict[str, Any]],
    plan: SendPlan,
    progress: RunProgress,
    log: Callable[[str], None],
    batch_no: int,
) -> list[dict[str, Any]]:
    """Advertising, at send time: drop (cancel) suppressed and capped recipients of the batch."""
    now = plan.clock() if plan.clock is not None else datetime.now(UTC)
    local = now.astimezone(C.SEOUL)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    keys = [r["idempotency_key"] for r in rows]
    blocked = cancel_unwanted(db, keys, plan.frequency_cap, day_start)
    if blocked:
        progress.log(
            log, f"batch {batch_no}: {len(blocked)} recipient(s) suppressed or over the cap"
        )
    return [r for r in rows if r["idempotency_key"] not in blocked]


class OutcomeRecorder:
    """Records a sent group's outcome (``settle_response_group``) in a worker thread while the
    main thread prepares the next batch: claims its rows, renders them and adds them to the
    next group. The next group is sent (and registered as ``sending``) only after this
    recording has committed (``join``), so at most one sent group is ever unrecorded, exactly
    as when every step ran in turn; what a crash leaves behind is the same too (a sent group
    still ``sending``, settled by reading it; a prepared group still ``created``, abandoned).

    Measured (issue 13 benchmark): recording a batch of 10,000 outcomes took 0.22-0.29 s of a
    0.8 s batch; it now overlaps the next batch's claim and add."""

    def __init__(
        self, pool: ThreadPoolExecutor, progress: RunProgress, log: Callable[[str], None]
    ) -> None:
        self._pool = pool
        self._progress = progress
        self._log = log
        self._pending: tuple[Future[BatchResult], int, int, str] | None = None

    def start(
        self, db: PostgresResource, group_id: str, cost: float, batch_no: int, refused: int
    ) -> None:
        assert self._pending is None, "a recording is already in progress"

        def record() -> BatchResult:
            result = settle_response_group(db, group_id, cost)
            set_hints(db, result.pages)  # while the recorded pages are still in shared buffers
            return result

        future = self._pool.submit(record)
        self._pending = (future, batch_no, refused, group_id)

    def join(self) -> bool:
        """Wait for the recording in progress (its error is raised here). Returns whether there
        was one."""
        if self._pending is None:
            return False
        future, batch_no, refused, group_id = self._pending
        self._pending = None
        result = future.result()
        self._progress.batches_sent += 1
        self._progress.log(
            self._log,
            f"batch {batch_no}: {result.accepted} accepted, {refused} refused (group {group_id})",
        )
        return True


@dataclass(frozen=True)
class Claimed:
    """A batch claimed into a new SOLAPI group (``rows`` empty: nothing was left to claim)."""

    group_id: str
    rows: list[dict[str, Any]]


def claim_next(
    db: PostgresResource, solapi: SolapiResource, run_id: str, plan: SendPlan, after: int
) -> Claimed:
    """Create a group and claim the next batch (load positions above ``after``) into it.

    Raises:
        TransientError, ServiceUnavailable, httpx.TransportError: the group could not be created
            (nothing was claimed).
    """
    group_id = solapi.create_group().group_id
    size = max(1, min(plan.chunk_size, C.SEND_CHUNK_MAX))
    return Claimed(group_id, claim_batch(db, run_id, size, group_id, plan.now(), after))


STOPPED_BEFORE_SEND = "not sent: the run stopped before its send"


def _drop_claimed(
    db: PostgresResource,
    solapi: SolapiResource,
    ahead: Future[Claimed],
    progress: RunProgress,
    log: Callable[[str], None],
) -> None:
    """A batch claimed ahead that will not be sent: its group is abandoned, its rows handed
    back. Best effort (the run is stopping, maybe on an error already): a failure is logged,
    and the group, still ``created``, is abandoned by the next attempt."""
    try:
        claimed = ahead.result()
    except Exception:  # nothing was claimed
        return
    try:
        abandon_group(db, solapi, claimed.group_id, STOPPED_BEFORE_SEND)
    except Exception as exc:  # logged; the next attempt abandons it
        progress.log(
            log,
            f"group {claimed.group_id} (claimed ahead, not sent) could not be abandoned now"
            f" ({type(exc).__name__}: {exc!s:.200}); the next attempt abandons it",
            "warning",
        )


@dataclass(frozen=True)
class RunSend:
    """What every batch of one run's send shares."""

    db: PostgresResource
    solapi: SolapiResource
    run_id: str
    template: Template
    plan: SendPlan
    progress: RunProgress
    log: Callable[[str], None]
    cost: float
    recorder: OutcomeRecorder


def _send_one_group(run: RunSend, batch_no: int, claimed: Claimed) -> bool:
    """Add a claimed batch to its group and send it once (after the previous group's outcome is
    recorded; this group's outcome is recorded while the batch after it is prepared). Returns
    True when something was accepted or settled (or the batch was handed back because the run
    is stopping), False when the attempt stalled.

    Raises:
        PermanentError: SOLAPI refused a request as a whole (rows handed back).
    """
    db, solapi, run_id, template, plan = run.db, run.solapi, run.run_id, run.template, run.plan
    progress, log, cost, recorder = run.progress, run.log, run.cost, run.recorder
    group_id, rows = claimed.group_id, claimed.rows
    if template.category == "promotion":
        rows = _without_unwanted(db, rows, plan, progress, log, batch_no)
        if not rows:
            abandon_group(db, solapi, group_id, "every row of the batch was suppressed or capped")
            return True
    payload = [solapi_message(r, template, solapi, plan.fallback) for r in rows]
    rows, payload = fit_request(db, rows, payload, plan.max_request_bytes)
    try:
        registered = solapi.add_group_messages(group_id, payload)
    except PermanentError:
        abandon_group(db, solapi, group_id, "messages refused as a whole")
        raise
    except (*AMBIGUOUS, ValueError) as exc:
        # Not sent (a group goes out only on its send): discard the group, the rows are retried.
        progress.log(log, f"batch {batch_no}: adding to group failed ({exc!s:.120}); retried")
        abandon_group(db, solapi, group_id, f"add failed: {exc!s:.200}")
        return False
    try:
        waited = recorder.join()
    except BaseException:
        abandon_group(
            db, solapi, group_id, "not sent: recording the previous group's outcome failed"
        )
        raise
    if waited and _stop_due(db, run_id, template, plan):
        # a cancel, a pause or quiet hours arrived while the previous batch was recorded: this
        # batch goes back unsent, the checks between batches then stop the run
        abandon_group(db, solapi, group_id, STOPPED_BEFORE_SEND)
        return True
    accepted, refused = record_registration(db, group_id, rows, registered)
    if not accepted:
        settle_group(db, group_id, cost)  # nothing to send: the group is closed unsent
        progress.log(log, f"batch {batch_no}: all {refused} refused at registration")
        return True
    try:
        solapi.send_group(group_id)
    except (*AMBIGUOUS, PermanentError) as exc:
        progress.log(
            log,
            f"batch {batch_no}: send of group {group_id} unknown ({type(exc).__name__}: "
            f"{exc!s:.120}); reading the group",
            "warning",
        )
        outcome, settled = settle_unknown_group(db, solapi, group_id, cost, plan)
        progress.reconciled += settled
        if outcome != "sent" and isinstance(exc, PermanentError):
            raise
        return outcome == "sent"
    recorder.start(db, group_id, cost, batch_no, refused)
    return True


def settle_response_group(db: PostgresResource, group_id: str, cost: float) -> BatchResult:
    """Record a group's successful send answer (wrapped by the crash tests' hook)."""
    return settle_group(db, group_id, cost)


def send_pending(
    db: PostgresResource,
    solapi: SolapiResource,
    run_id: str,
    template: Template,
    plan: SendPlan,
    progress: RunProgress,
    log: Callable[[str], None],
) -> None:
    """Send every unsent pending row of the run through SOLAPI's group flow, each exactly once.

    Raises:
        WorkflowConfigError: Alimtalk without the Kakao channel profile id.
        PermanentError: SOLAPI refused a request as a whole (its rows are handed back).
        ServiceUnavailable: sends keep failing without anything accepted.
    """
    if template.message_type == "kakao" and not solapi.pf_id:
        raise WorkflowConfigError("Alimtalk needs the Kakao channel profile id (SOLAPI_PF_ID)")
    cost = unit_cost(template.message_type)
    if progress.resumed:
        # what an earlier attempt of this execution left unsettled (a run this process started
        # has nothing to settle, and looking would read each of its rows once more)
        progress.reconciled += reconcile_attempted(db, solapi, run_id, cost)  # send-many era
        progress.reconciled += settle_open_groups(db, solapi, run_id, cost, plan)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="messaging-outcomes") as pool:
        recorder = OutcomeRecorder(pool, progress, log)
        try:
            _send_batches(
                RunSend(db, solapi, run_id, template, plan, progress, log, cost, recorder)
            )
        finally:
            recorder.join()  # the last group's outcome (or its error) before the run goes on


def _send_batches(run: RunSend) -> None:
    db, solapi, run_id, template, plan = run.db, run.solapi, run.run_id, run.template, run.plan
    progress, log = run.progress, run.log
    batch_no = stalled = 0
    position = ClaimPosition()
    # the first claims start below every mark left before this loop (an earlier attempt's
    # deferral, this attempt's settling of what the last one left open)
    db.execute("UPDATE public.workflow_runs SET handed_back_from = NULL WHERE id = %s", (run_id,))
    # the next batch is claimed (group created, rows claimed) in a worker thread while this one
    # is rendered, added and sent: the claim (0.13-0.20 s of PostgreSQL per 10,000 rows) overlaps
    # the add (0.27-0.31 s at SOLAPI)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="messaging-claims") as claims:
        ahead: Future[Claimed] | None = None
        try:
            while True:
                if _stop_due(db, run_id, template, plan):
                    # the batch claimed ahead goes back first, so the cancel or the deferral
                    # below covers its rows too (a stop seen only by the actions, after this
                    # check, is acted on at the next batch instead)
                    if ahead is not None:
                        _drop_claimed(db, solapi, ahead, progress, log)
                        ahead = None
                    if _stop_requested(db, run_id, progress, log):
                        return
                    if _quiet_hours_stop(db, run_id, template, plan, progress, log):
                        return
                checked = ahead is None
                if ahead is None:
                    if not _has_sendable(db, run_id, plan.now(), position):
                        return
                    ahead = claims.submit(claim_next, db, solapi, run_id, plan, position.after)
                current, ahead = ahead, None
                try:
                    claimed = current.result()
                except AMBIGUOUS as exc:  # nothing was claimed: try again after a back-off
                    progress.log(
                        log,
                        f"batch {batch_no + 1}: creating a group failed ({exc!s:.120})",
                        "warning",
                    )
                    done = False
                else:
                    if not claimed.rows:
                        abandon_group(db, solapi, claimed.group_id, "nothing left to send")
                        if checked:
                            return  # nothing was claimable after all
                        continue  # the check above decides: a sweep below the position, or done
                    batch_no += 1
                    position.after = max(r["run_seq"] for r in claimed.rows)
                    ahead = claims.submit(claim_next, db, solapi, run_id, plan, position.after)
                    done = _send_one_group(run, batch_no, claimed)
                stalled = 0 if done else stalled + 1
                if stalled >= MAX_STALLED_SENDS:
                    raise ServiceUnavailable(
                        "solapi",
                        f"{stalled} consecutive batches failed without being sent; the run stops "
                        "(a retry resumes where it stopped)",
                    )
                if stalled:
                    time.sleep(min(0.5 * 2 ** (stalled - 1), 10.0))
        finally:
            if ahead is not None:
                _drop_claimed(db, solapi, ahead, progress, log)
