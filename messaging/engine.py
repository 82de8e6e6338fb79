"""Executing a workflow: targets from MySQL, rendering, message logs, sending exactly once, bookkeeping.

Delivery guarantee (exactly once per execution and recipient):

1. The execution is identified by an *execution key* (schedule tick, event key range, webhook event,
   or the Dagster root run id for a manual launch). ``workflow_runs.execution_key`` is unique, so a
   retried run resumes the same ``workflow_runs`` row.
2. Every recipient's ``message_logs`` row is written (``pending``, with ``idempotency_key`` =
   hash(execution key, phone)) and committed before anything is sent. Re-running never renders twice.
3. Before a batch is sent its rows get ``send_attempted_at`` (committed). The request itself is not
   retried. After the response each row becomes ``sent`` (provider message id, cost) or ``failed``
   (SOLAPI status code).
4. Rows that are ``pending`` with ``send_attempted_at`` set (a crash, a lost response) are reconciled
   by status lookup: found by ``customFields.idempotencyKey`` -> ``sent``; not found -> cleared and
   sent again. So a crash or retry never sends twice and never skips a recipient.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from messaging import constants as C
from messaging.catalog import iter_targets, load_table_mappings, target_query
from messaging.models import (
    ExecutionInProgress,
    MatchReport,
    RenderedMessage,
    Template,
    VariableSource,
    WorkflowConfigError,
)
from messaging.transform import (
    auto_match,
    idempotency_key,
    in_ad_quiet_hours,
    individual_mapping_source,
    is_inline_sql,
    parse_variable_sources,
    placeholders,
    render_message,
    resolve_values,
    unit_cost,
)
from resources.errors import PermanentError, ServiceUnavailable, TransientError
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.solapi import (
    REQUEST_BUDGET_BYTES,
    SolapiResource,
    split_by_size,
    within_budget_cheaply,
)
from resources.state import quarantine

SOLAPI_TYPE = {"sms": "SMS", "lms": "LMS", "kakao": "ATA"}
AMBIGUOUS = (TransientError, ServiceUnavailable, httpx.TransportError)
ACCEPTED_CODES = {"2000", "3000", "4000"}  # accepted, at the carrier, delivered
# SOLAPI dates messages with its own clock, which may differ from ours by up to its 15-minute auth
# tolerance: the lookup after an ambiguous send starts that much earlier.
LOOKUP_MARGIN = timedelta(minutes=16)
MAX_STALLED_SENDS = 4  # consecutive ambiguous sends with nothing accepted before the run gives up


@dataclass
class RunOptions:
    workflow_id: str
    execution_key: str
    send_mode: str = "dry_run"
    trigger_type: str | None = None
    event_range: tuple[int, int] | None = None
    webhook_event_id: int | None = None
    payload: dict[str, Any] | None = None
    chunk_size: int = C.SEND_CHUNK_MAX
    max_request_bytes: int = REQUEST_BUDGET_BYTES  # SOLAPI: 15 MB per request (less the envelope)
    dagster_run_id: str | None = None
    now: datetime | None = None
    lock_wait_s: float = 10.0
    # the wall clock for the advertising quiet-hours check before each batch (tests inject one);
    # defaults to ``now`` when given, else the real time
    clock: Callable[[], datetime] | None = None
    # fault-injection hooks: tests kill the process after a batch's response arrived (before it is
    # recorded) or after it was recorded
    after_send: Callable[[int], None] | None = None
    after_batch: Callable[[int], None] | None = None


def _clock(opts: RunOptions) -> datetime:
    if opts.clock is not None:
        return opts.clock()
    return opts.now or datetime.now(UTC)


def _cancel_for_quiet_hours(db: PostgresResource, run_id: str) -> int:
    return db.execute(
        "UPDATE public.message_logs SET status = 'cancelled', error_code = %s, error_message = %s"
        " WHERE workflow_run_id = %s AND status = 'pending' AND send_attempted_at IS NULL",
        (C.ERR_QUIET_HOURS, "advertising messages are not sent 21:00-08:00 Asia/Seoul", run_id),
    )


@dataclass
class RunSummary:
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


def _log(
    summary: RunSummary, log: Callable[[str], None], message: str, level: str = "info"
) -> None:
    summary.logs.append({"at": datetime.now(UTC).isoformat(), "level": level, "message": message})
    log(message)


def load_template(db: PostgresResource, workflow: Mapping[str, Any]) -> Template:
    cfg = workflow.get("message_config") or {}
    template_id = cfg.get("template_id")
    if not template_id:
        raise WorkflowConfigError(
            f"workflow {workflow['id']}: message_config.template_id is required"
        )
    row = db.fetch_one("SELECT * FROM public.message_templates WHERE id = %s", (template_id,))
    if row is None:
        raise WorkflowConfigError(f"workflow {workflow['id']}: template {template_id} not found")
    if row["status"] == "archived":
        raise WorkflowConfigError(f"template {row['name']!r} is archived")
    if row["message_type"] == "kakao" and not row.get("template_code"):
        raise WorkflowConfigError(f"Alimtalk template {row['name']!r} has no template_code")
    if row["message_type"] == "kakao" and row["category"] == "promotion":
        raise WorkflowConfigError(
            f"template {row['name']!r}: Alimtalk is for informational messages only; "
            "send advertising as SMS/LMS"
        )
    return Template(
        str(row["id"]),
        row["name"],
        row["category"],
        row["message_type"],
        row["content"],
        row.get("template_code"),
        list(row.get("buttons") or []),
    )


def opt_out_line(db: PostgresResource) -> str:
    value = db.fetch_value(
        "SELECT setting_value FROM public.system_settings WHERE setting_key = 'messaging.opt_out_line'"
    )
    return str(value) if isinstance(value, str) and value else C.DEFAULT_OPT_OUT_LINE


class QueryVariables:
    """``query`` variables: a ``variable_query_templates`` SELECT with bound parameters, cached per params."""

    def __init__(self, db: PostgresResource, mysql: MySQLResource):
        self.mysql = mysql
        self.templates = {
            r["template_name"]: r
            for r in db.fetch_all("SELECT * FROM public.variable_query_templates")
        }
        self.cache: dict[tuple, Any] = {}
        self.used: set[str] = set()

    def __call__(self, src: VariableSource, row: Mapping[str, Any]) -> Any:
        tpl = self.templates.get(src.query_template or "")
        if tpl is None and is_inline_sql(src.query_template):
            # an individual mapping whose source_field is the SELECT itself (seed 001 §2.3.1)
            tpl = {"template_name": None, "query_sql": src.query_template}
        if tpl is None:
            raise WorkflowConfigError(
                f"variable {src.name!r}: no variable_query_templates row {src.query_template!r}"
            )
        params = {p: row.get(col) for p, col in (src.params or {}).items()}
        key = (src.query_template, tuple(sorted(params.items())))
        if key not in self.cache:
            rows = self.mysql.query(tpl["query_sql"], params or None)
            self.cache[key] = rows[0] if rows else None
            if tpl["template_name"]:
                self.used.add(tpl["template_name"])
        result = self.cache[key]
        if result is None:
            return None
        return result.get(src.column) if src.column else next(iter(result.values()), None)


def match_variables(
    db: PostgresResource,
    template: Template,
    workflow: Mapping[str, Any],
    columns: list[str],
    display_names: Mapping[str, str],
) -> tuple[MatchReport, dict[str, str]]:
    individual_rows = db.fetch_all("SELECT * FROM public.individual_variable_mappings")
    individual = {r["variable_name"]: individual_mapping_source(r) for r in individual_rows}
    ids = {r["variable_name"]: str(r["id"]) for r in individual_rows}
    explicit = parse_variable_sources(workflow.get("variables") or {})
    report = auto_match(
        placeholders(template.content), columns, explicit, display_names, individual
    )
    used_individual = {
        n: ids[n] for n, s in report.matched.items() if n in ids and s is individual.get(n)
    }
    return report, used_individual


def _start_run(
    db: PostgresResource, workflow: Mapping[str, Any], opts: RunOptions
) -> tuple[str, str, bool]:
    row = db.fetch_one(
        """INSERT INTO public.workflow_runs (workflow_id, status, trigger_type, execution_key, dagster_run_id)
           VALUES (%s, 'running', %s, %s, %s)
           ON CONFLICT (execution_key) DO UPDATE
              SET dagster_run_id = EXCLUDED.dagster_run_id,
                  status = CASE WHEN workflow_runs.status = 'completed' THEN 'completed' ELSE 'running' END,
                  error_message = NULL
           RETURNING id, status, (xmax = 0) AS inserted""",
        (
            workflow["id"],
            opts.trigger_type or workflow["trigger_type"],
            opts.execution_key,
            opts.dagster_run_id,
        ),
    )
    return str(row["id"]), row["status"], not row["inserted"]


def _write_logs(
    db: PostgresResource,
    run_id: str,
    template: Template,
    opts: RunOptions,
    messages: list[RenderedMessage],
) -> None:
    cols = [
        "workflow_run_id",
        "template_id",
        "recipient_phone",
        "recipient_name",
        "message_type",
        "message_content",
        "variables_used",
        "status",
        "provider",
        "error_code",
        "error_message",
        "failed_at",
        "idempotency_key",
    ]
    now = datetime.now(UTC)
    with db.transaction() as conn, conn.cursor() as cur:
        with cur.copy(f"COPY public.message_logs ({', '.join(cols)}) FROM STDIN") as copy:
            copy.set_types(
                [
                    "text",
                    "text",
                    "varchar",
                    "varchar",
                    "varchar",
                    "text",
                    "jsonb",
                    "varchar",
                    "varchar",
                    "varchar",
                    "text",
                    "timestamptz",
                    "text",
                ]
            )
            for n, m in enumerate(messages):
                key = idempotency_key(
                    opts.execution_key, m.phone if m.ok else f"invalid#{n}#{m.raw_phone}"
                )
                copy.write_row(
                    (
                        run_id,
                        template.id,
                        (m.phone or m.raw_phone)[:20],
                        (m.name or "")[:255] or None,
                        m.message_type,
                        m.content,
                        Jsonb(m.variables),
                        "pending" if m.ok else "failed",
                        C.PROVIDER,
                        m.error_code,
                        m.error_message,
                        None if m.ok else now,
                        key,
                    )
                )


def _quarantine_bad_contacts(
    db: PostgresResource,
    workflow: Mapping[str, Any],
    messages: list[RenderedMessage],
    opts: RunOptions,
) -> None:
    """A CRM row whose phone is unusable is a source data problem: quarantine it (id and reason)."""
    bad = [m for m in messages if m.error_code == C.ERR_PHONE]
    if not bad:
        return
    source = f"mysql/{(workflow.get('target_config') or {}).get('table') or 'target_query'}"
    with db.transaction() as conn, conn.pipeline():  # one round trip for the batch, not one per row
        for m in bad:
            quarantine(
                conn,
                domain=C.DOMAIN,
                source=source,
                item_id=m.source_id or f"phone:{m.raw_phone}",
                reason=f"{C.ERR_PHONE}: {m.error_message}",
                payload={"name": m.name, "phone": m.raw_phone},
                run_id=opts.dagster_run_id,
            )


@dataclass
class TargetPlan:
    query: Any
    display: dict[str, str]
    report: MatchReport | None
    used_individual: dict[str, str]


def plan_targets(
    db: PostgresResource, workflow: Mapping[str, Any], template: Template, opts: RunOptions
) -> TargetPlan:
    """The target SELECT and, for mapped tables, the variable matching done up front so only the
    columns the message needs are read."""
    mappings = load_table_mappings()
    query = target_query(
        workflow.get("target_config") or {}, mappings, opts.event_range, opts.payload
    )
    if (
        not query.table
    ):  # an SQL target: a column's display name from the first mapped table that has it
        display: dict[str, str] = {}
        for mapping in mappings.values():
            for f in mapping.fields.values():
                display.setdefault(f.name, f.display_name)
        return TargetPlan(query, display, None, {})
    mapping = mappings[query.table]
    display = {f.name: f.display_name for f in mapping.fields.values()}
    report, used_individual = match_variables(db, template, workflow, list(mapping.fields), display)
    needed = {mapping.key_field, mapping.phone_field, mapping.name_field}
    for src in report.matched.values():
        needed |= {src.column, src.argument, *src.params.values()}
    query = target_query(
        workflow.get("target_config") or {},
        mappings,
        opts.event_range,
        opts.payload,
        columns=[c for c in needed if c],
    )
    return TargetPlan(query, display, report, used_individual)


def _render_all(
    db: PostgresResource,
    mysql: MySQLResource,
    workflow: Mapping[str, Any],
    template: Template,
    opts: RunOptions,
    summary: RunSummary,
    log,
) -> tuple[list[RenderedMessage], MatchReport, dict, QueryVariables]:
    plan = plan_targets(db, workflow, template, opts)
    query, display, report, used_individual = (
        plan.query,
        plan.display,
        plan.report,
        plan.used_individual,
    )
    if report is not None and report.unmapped:
        _log(
            summary,
            log,
            "unmapped template variable(s): "
            + ", ".join(report.unmapped)
            + " — recipients without a value are logged as failed, not sent",
            "warning",
        )
    now = opts.now or datetime.now(UTC)
    lookup = QueryVariables(db, mysql)
    line = opt_out_line(db)
    out: list[RenderedMessage] = []
    seen: set[str] = set()
    for batch in iter_targets(mysql, query):
        if report is None:
            report, used_individual = match_variables(
                db, template, workflow, list(batch[0]), display
            )
            if report.unmapped:
                _log(
                    summary,
                    log,
                    "unmapped template variable(s): "
                    + ", ".join(report.unmapped)
                    + " — recipients without a value are logged as failed, not sent",
                    "warning",
                )
        for row in batch:
            summary.rows_read += 1
            values = resolve_values(report, row, now, lookup)
            msg = render_message(
                template,
                row,
                values,
                phone_column=query.phone_column,
                name_column=query.name_column,
                opt_out_line=line,
            )
            if msg.phone is not None:
                if msg.phone in seen:
                    summary.duplicates_dropped += 1
                    continue
                seen.add(msg.phone)
            out.append(msg)
    if report is None:
        report, used_individual = match_variables(db, template, workflow, [], display)
    return out, report, used_individual, lookup


def _solapi_message(
    row: Mapping[str, Any], template: Template, solapi: SolapiResource, variables: Mapping[str, Any]
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "to": row["recipient_phone"],
        "from": solapi.sender,
        "text": row["message_content"],
        "type": SOLAPI_TYPE[row["message_type"]],
        "customFields": {"idempotencyKey": row["idempotency_key"]},
    }
    if row["message_type"] == "kakao":
        msg["kakaoOptions"] = {
            "pfId": solapi.pf_id,
            "templateId": template.template_code,
            "variables": {f"#{{{k}}}": str(v) for k, v in (variables or {}).items()},
            "disableSms": False,
            **({"buttons": template.buttons} if template.buttons else {}),
        }
    return msg


def _apply_results(
    conn,
    sent: list[tuple[str, str, str]],
    failed: list[tuple[str, str, str, str | None]],
    costs: float,
) -> None:
    """sent: (idempotency_key, message_id, group_id); failed: (idempotency_key, code, message, message_id)."""
    if sent:
        conn.execute(
            """UPDATE public.message_logs m SET status = 'sent', provider_message_id = v.mid, provider_group_id = v.gid,
                      sent_at = now(), cost = %s, error_code = NULL, error_message = NULL
               FROM (SELECT unnest(%s::text[]) AS k, unnest(%s::text[]) AS mid, unnest(%s::text[]) AS gid) v
               WHERE m.idempotency_key = v.k AND m.status = 'pending'""",
            (costs, [s[0] for s in sent], [s[1] for s in sent], [s[2] for s in sent]),
        )
    if failed:
        conn.execute(
            """UPDATE public.message_logs m SET status = 'failed', error_code = v.code, error_message = v.msg,
                      failed_at = now(), provider_message_id = coalesce(v.mid, m.provider_message_id)
               FROM (SELECT unnest(%s::text[]) AS k, unnest(%s::text[]) AS code, unnest(%s::text[]) AS msg,
                            unnest(%s::text[]) AS mid) v
               WHERE m.idempotency_key = v.k AND m.status = 'pending'""",
            (
                [f[0] for f in failed],
                [f[1] for f in failed],
                [f[2] for f in failed],
                [f[3] for f in failed],
            ),
        )


def reconcile_attempted(
    db: PostgresResource, solapi: SolapiResource, run_id: str, message_type_cost: float
) -> int:
    """Settle rows whose send was attempted but whose outcome is unknown, by status lookup.

    Found at SOLAPI (by ``customFields.idempotencyKey``) accepted (2000/3000/4000) -> ``sent``; found
    refused (any other code) -> ``failed`` with that code; not found -> attempt cleared so the row is
    sent again. Returns how many rows were settled.
    """
    oldest = db.fetch_value(
        "SELECT min(send_attempted_at) FROM public.message_logs WHERE workflow_run_id = %s AND status = 'pending'"
        " AND send_attempted_at IS NOT NULL",
        (run_id,),
    )
    if oldest is None:
        return 0
    keys = {
        r["idempotency_key"]
        for r in db.fetch_all(
            "SELECT idempotency_key FROM public.message_logs WHERE workflow_run_id = %s AND status = 'pending'"
            " AND send_attempted_at IS NOT NULL",
            (run_id,),
        )
    }
    found: dict[str, tuple[str, str, str]] = {}
    refused: dict[str, tuple[str, str, str]] = {}
    for record in solapi.iter_messages(start_date=oldest - LOOKUP_MARGIN):
        key = (record.get("customFields") or {}).get("idempotencyKey")
        if key not in keys:
            continue
        code = str(record.get("statusCode") or "")
        if code in ACCEPTED_CODES:
            found[key] = (key, record["messageId"], record.get("groupId") or "")
            refused.pop(key, None)
        elif key not in found:
            # SOLAPI lists refused messages too (1xxx/2xxx/3xxx code): that attempt failed, it is not resent.
            refused[key] = (
                key,
                code,
                str(record.get("statusMessage") or "")[:500],
                record.get("messageId"),
            )
    keys -= set(found) | set(refused)
    with db.transaction() as conn:
        _apply_results(conn, list(found.values()), list(refused.values()), message_type_cost)
        if keys:
            conn.execute(
                "UPDATE public.message_logs SET send_attempted_at = NULL WHERE idempotency_key = ANY(%s)"
                " AND status = 'pending'",
                (list(keys),),
            )
    return len(found) + len(refused)


def _send_pending(
    db: PostgresResource,
    solapi: SolapiResource,
    run_id: str,
    template: Template,
    opts: RunOptions,
    summary: RunSummary,
    log,
) -> None:
    if template.message_type == "kakao" and not solapi.pf_id:
        raise WorkflowConfigError("Alimtalk needs the Kakao channel profile id (SOLAPI_PF_ID)")
    cost = unit_cost(template.message_type)
    summary.reconciled += reconcile_attempted(db, solapi, run_id, cost)
    chunk = max(1, min(opts.chunk_size, C.SEND_CHUNK_MAX))
    batch_no = 0
    stalled = 0
    while True:
        if template.category == "promotion" and in_ad_quiet_hours(_clock(opts)):
            # A long advertising send that reaches 21:00 Asia/Seoul stops: the rest is cancelled.
            n = _cancel_for_quiet_hours(db, run_id)
            if n:
                _log(
                    summary,
                    log,
                    f"{n} advertising message(s) cancelled: quiet hours began during the send",
                    "warning",
                )
            return
        with db.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """UPDATE public.message_logs SET send_attempted_at = now()
                   WHERE id IN (SELECT id FROM public.message_logs WHERE workflow_run_id = %s AND status = 'pending'
                                AND send_attempted_at IS NULL ORDER BY idempotency_key LIMIT %s FOR UPDATE)
                   RETURNING idempotency_key, recipient_phone, message_content, message_type, variables_used""",
                (run_id, chunk),
            )
            rows = cur.fetchall()
        if not rows:
            return
        batch_no += 1
        payload = [_solapi_message(r, template, solapi, r["variables_used"]) for r in rows]
        if not within_budget_cheaply(payload, opts.max_request_bytes):
            # SOLAPI takes at most 15 MB per request: send what fits, hand the rest back to the next batch.
            first = split_by_size(payload, opts.max_request_bytes)[0]
            if len(first) < len(payload):
                db.execute(
                    "UPDATE public.message_logs SET send_attempted_at = NULL WHERE idempotency_key = ANY(%s)",
                    ([r["idempotency_key"] for r in rows[len(first) :]],),
                )
                payload, rows = first, rows[: len(first)]
        try:
            response = solapi.send_many_detail(payload)
        except PermanentError as exc:
            # The request as a whole was refused (auth, validation): nothing was accepted.
            db.execute(
                "UPDATE public.message_logs SET send_attempted_at = NULL WHERE idempotency_key = ANY(%s)",
                ([r["idempotency_key"] for r in rows],),
            )
            raise
        except AMBIGUOUS as exc:
            _log(
                summary,
                log,
                f"batch {batch_no}: outcome unknown ({type(exc).__name__}: {str(exc)[:120]}); "
                "reconciling by status lookup",
                "warning",
            )
            found = reconcile_attempted(db, solapi, run_id, cost)
            summary.reconciled += found
            stalled = 0 if found else stalled + 1
            if stalled >= MAX_STALLED_SENDS:
                raise ServiceUnavailable(
                    "solapi",
                    f"{stalled} consecutive send requests failed without being "
                    "accepted; the run stops (a retry resumes where it stopped)",
                ) from exc
            if stalled:
                time.sleep(
                    min(0.5 * 2 ** (stalled - 1), 10.0)
                )  # back off while nothing gets through
            continue
        stalled = 0
        if opts.after_send is not None:
            opts.after_send(batch_no)
        group_id = (response.get("groupInfo") or {}).get("groupId") or ""
        sent = [
            ((m.get("customFields") or {}).get("idempotencyKey"), m["messageId"], group_id)
            for m in response.get("messageList") or []
        ]
        failed = [
            (
                (m.get("customFields") or {}).get("idempotencyKey"),
                str(m.get("statusCode")),
                str(m.get("statusMessage") or "")[:500],
                m.get("messageId"),
            )
            for m in response.get("failedMessageList") or []
        ]
        with db.transaction() as conn:
            _apply_results(conn, [s for s in sent if s[0]], [f for f in failed if f[0]], cost)
        if len(sent) + len(failed) < len(rows):
            # The 200 did not account for every message (no messageList): settle the rest by lookup.
            summary.reconciled += reconcile_attempted(db, solapi, run_id, cost)
        summary.batches_sent += 1
        _log(
            summary,
            log,
            f"batch {batch_no}: {len(sent)} accepted, {len(failed)} refused (group {group_id})",
        )
        if opts.after_batch is not None:
            opts.after_batch(batch_no)


def _finish(
    db: PostgresResource,
    run_id: str,
    workflow: Mapping[str, Any],
    template: Template,
    report: MatchReport,
    used_individual: Mapping[str, str],
    lookup: QueryVariables | None,
    summary: RunSummary,
    opts: RunOptions,
    first_finish: bool,
) -> None:
    counts = db.fetch_one(
        """SELECT count(*) AS total,
                  count(*) FILTER (WHERE status IN ('sent', 'delivered')) AS ok,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  coalesce(sum(cost), 0) AS cost
           FROM public.message_logs WHERE workflow_run_id = %s""",
        (run_id,),
    )
    summary.target_count, summary.success_count = int(counts["total"]), int(counts["ok"])
    summary.failed_count, summary.cancelled_count = int(counts["failed"]), int(counts["cancelled"])
    summary.pending_count, summary.total_cost = int(counts["pending"]), float(counts["cost"])
    summary.status = "completed" if summary.pending_count == 0 else "failed"
    error = (
        None
        if summary.status == "completed"
        else f"{summary.pending_count} message(s) still pending"
    )
    with db.transaction() as conn:
        conn.execute(
            """UPDATE public.workflow_runs SET status = %s, target_count = %s, success_count = %s, failed_count = %s,
                      total_cost = %s, error_message = %s, completed_at = now(),
                      execution_time_ms = (extract(epoch FROM now() - started_at) * 1000)::int,
                      logs = coalesce(logs, '[]'::jsonb) || %s
               WHERE id = %s""",
            (
                summary.status,
                summary.target_count,
                summary.success_count,
                summary.failed_count,
                summary.total_cost,
                error,
                Jsonb(summary.logs),
                run_id,
            ),
        )
        if first_finish:
            conn.execute(
                "INSERT INTO public.template_usage_logs (template_id, workflow_id, variables_used, success, error_message)"
                " VALUES (%s, %s, %s, %s, %s)",
                (
                    template.id,
                    workflow["id"],
                    Jsonb(
                        {
                            "matched": {k: v.source_type for k, v in report.matched.items()},
                            "unmapped": report.unmapped,
                        }
                    ),
                    summary.failed_count == 0,
                    None if summary.failed_count == 0 else f"{summary.failed_count} failed",
                ),
            )
            if used_individual:
                conn.execute(
                    "UPDATE public.individual_variable_mappings SET usage_count = usage_count + 1,"
                    " last_used_at = now() WHERE id = ANY(%s::uuid[])",
                    (list(used_individual.values()),),
                )
            if lookup is not None and lookup.used:
                conn.execute(
                    "UPDATE public.variable_query_templates SET usage_count = usage_count + 1,"
                    " last_used_at = now() WHERE template_name = ANY(%s)",
                    (sorted(lookup.used),),
                )
        conn.execute(
            """UPDATE public.workflows w SET last_run_at = now(), statistics = s.stats
               FROM (SELECT jsonb_build_object(
                        'total_runs', count(*), 'completed_runs', count(*) FILTER (WHERE status = 'completed'),
                        'failed_runs', count(*) FILTER (WHERE status = 'failed'),
                        'messages_sent', coalesce(sum(success_count), 0), 'messages_failed', coalesce(sum(failed_count), 0),
                        'total_cost', coalesce(sum(total_cost), 0), 'last_run_id', %s::text, 'last_status', %s::text) AS stats
                     FROM public.workflow_runs WHERE workflow_id = %s) s
               WHERE w.id = %s""",
            (run_id, summary.status, workflow["id"], workflow["id"]),
        )
        if opts.webhook_event_id is not None:
            conn.execute(
                "UPDATE public.messaging_webhook_events SET status = 'processed', processed_at = now(),"
                " workflow_run_id = %s WHERE id = %s",
                (run_id, opts.webhook_event_id),
            )


@contextmanager
def execution_lock(
    db: PostgresResource, execution_key: str, wait_s: float = 10.0
) -> Iterator[None]:
    """A session advisory lock per execution key, held for the whole execution.

    Two processes resuming the same execution at once could each take the other's in-flight batch
    for lost and send it again; the lock makes the second fail fast instead. A crashed process's
    lock goes away with its connection.
    """
    with db.connection() as conn:
        conn.autocommit = True
        try:
            # A killed holder's backend notices the closed socket a moment later, so wait a little.
            deadline = time.monotonic() + wait_s
            while not conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (execution_key,)
            ).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise ExecutionInProgress(
                        f"execution {execution_key} is already running in another process"
                    )
                time.sleep(0.1)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (execution_key,))
        finally:
            conn.autocommit = False


def execute_workflow(
    db: PostgresResource,
    mysql: MySQLResource,
    solapi: SolapiResource | None,
    opts: RunOptions,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Run one execution of a workflow (resuming it if the execution key was seen before).

    Raises:
        ExecutionInProgress: the same execution key is running elsewhere.
        WorkflowConfigError: the workflow, its template or its configuration cannot be executed.
    """
    with execution_lock(db, opts.execution_key, opts.lock_wait_s):
        return _execute(db, mysql, solapi, opts, log)


def _execute(
    db: PostgresResource,
    mysql: MySQLResource,
    solapi: SolapiResource | None,
    opts: RunOptions,
    log: Callable[[str], None],
) -> RunSummary:
    started = time.perf_counter()
    if opts.send_mode not in C.SEND_MODES:
        raise WorkflowConfigError(
            f"MESSAGING_SEND_MODE must be one of {C.SEND_MODES}, got {opts.send_mode!r}"
        )
    workflow = db.fetch_one("SELECT * FROM public.workflows WHERE id = %s", (opts.workflow_id,))
    if workflow is None:
        raise WorkflowConfigError(f"workflow {opts.workflow_id} not found")
    if workflow["status"] == "archived":
        raise WorkflowConfigError(f"workflow {workflow['name']!r} is archived")
    for column in (
        "target_config",
        "message_config",
        "variables",
        "trigger_config",
        "schedule_config",
    ):
        if workflow.get(column) is not None and not isinstance(workflow[column], dict):
            raise WorkflowConfigError(
                f"workflow {workflow['name']!r}: {column} must be a JSON object, "
                f"got {json.dumps(workflow[column], ensure_ascii=False)[:200]}"
            )
    template = load_template(db, workflow)
    run_id, status, resumed = _start_run(db, workflow, opts)
    summary = RunSummary(run_id, status, resumed=resumed)
    db.execute(
        "INSERT INTO public.user_activity_logs (user_id, action, resource_type, resource_id, details)"
        " VALUES ('dagster', %s, 'workflow', %s, %s)",
        (
            "workflow.resumed" if resumed else "workflow.executed",
            str(workflow["id"]),
            Jsonb(
                {
                    "execution_key": opts.execution_key,
                    "workflow_run_id": run_id,
                    "send_mode": opts.send_mode,
                    "dagster_run_id": opts.dagster_run_id,
                }
            ),
        ),
    )
    if status == "completed":
        _log(summary, log, f"execution {opts.execution_key} already completed; nothing to do")
        return summary
    try:
        existing = db.fetch_value(
            "SELECT count(*) FROM public.message_logs WHERE workflow_run_id = %s", (run_id,)
        )
        report, used_individual, lookup = MatchReport({}, []), {}, None
        if existing == 0:
            messages, report, used_individual, lookup = _render_all(
                db, mysql, workflow, template, opts, summary, log
            )
            summary.unmapped = report.unmapped
            _write_logs(db, run_id, template, opts, messages)
            _quarantine_bad_contacts(db, workflow, messages, opts)
            bad = sum(1 for m in messages if not m.ok)
            _log(
                summary,
                log,
                f"{len(messages)} recipient(s) logged ({bad} failed validation, "
                f"{summary.duplicates_dropped} duplicate phone(s) dropped)",
            )
        else:
            _log(
                summary,
                log,
                f"resuming execution {opts.execution_key}: {existing} message log row(s) exist",
            )
        if template.category == "promotion" and in_ad_quiet_hours(_clock(opts)):
            n = _cancel_for_quiet_hours(db, run_id)
            _log(
                summary,
                log,
                f"{n} advertising message(s) cancelled: quiet hours 21:00-08:00 Asia/Seoul",
                "warning",
            )
        if opts.send_mode == "dry_run":
            n = db.execute(
                "UPDATE public.message_logs SET status = 'cancelled', error_code = %s, error_message = %s"
                " WHERE workflow_run_id = %s AND status = 'pending' AND send_attempted_at IS NULL",
                (
                    C.ERR_DRY_RUN,
                    "MESSAGING_SEND_MODE=dry_run: rendered and logged, not sent",
                    run_id,
                ),
            )
            _log(summary, log, f"dry run: {n} message(s) rendered and logged, nothing sent")
        else:
            if solapi is None:
                raise WorkflowConfigError("live sending needs the solapi resource")
            _send_pending(db, solapi, run_id, template, opts, summary, log)
        _finish(
            db,
            run_id,
            workflow,
            template,
            report,
            used_individual,
            lookup,
            summary,
            opts,
            first_finish=True,
        )
    except BaseException as exc:
        db.execute(
            "UPDATE public.workflow_runs SET status = 'failed', error_message = %s, completed_at = now(),"
            " logs = coalesce(logs, '[]'::jsonb) || %s WHERE id = %s AND status = 'running'",
            (f"{type(exc).__name__}: {str(exc)[:500]}", Jsonb(summary.logs), run_id),
        )
        if opts.webhook_event_id is not None:
            db.execute(
                "UPDATE public.messaging_webhook_events SET error_message = %s WHERE id = %s",
                (f"{type(exc).__name__}: {str(exc)[:500]}", opts.webhook_event_id),
            )
        raise
    _log(
        summary,
        log,
        f"execution {opts.execution_key}: {json.dumps(summary.metadata(), ensure_ascii=False)} "
        f"in {time.perf_counter() - started:.2f}s",
    )
    return summary


def poll_delivery(
    db: PostgresResource, solapi: SolapiResource, limit: int = 10_000
) -> dict[str, int]:
    """Update ``sent`` rows from SOLAPI status lookup: 4000 -> delivered, other final codes -> failed."""
    rows = db.fetch_all(
        "SELECT provider_message_id FROM public.message_logs WHERE status = 'sent'"
        " AND provider_message_id IS NOT NULL ORDER BY sent_at LIMIT %s",
        (limit,),
    )
    ids = [r["provider_message_id"] for r in rows]
    if not ids:
        return {"checked": 0, "delivered": 0, "failed": 0, "waiting": 0}
    statuses = solapi.message_status(ids)
    delivered = [i for i, m in statuses.items() if str(m.get("statusCode")) == "4000"]
    failed = [
        (i, str(m.get("statusCode")), str(m.get("statusMessage") or ""))
        for i, m in statuses.items()
        if str(m.get("statusCode")) not in ("2000", "3000", "4000")
    ]
    with db.transaction() as conn:
        if delivered:
            conn.execute(
                "UPDATE public.message_logs SET status = 'delivered', delivered_at = now()"
                " WHERE provider_message_id = ANY(%s) AND status = 'sent'",
                (delivered,),
            )
        if failed:
            conn.execute(
                """UPDATE public.message_logs m SET status = 'failed', failed_at = now(), error_code = v.code,
                          error_message = v.msg
                   FROM (SELECT unnest(%s::text[]) AS id, unnest(%s::text[]) AS code, unnest(%s::text[]) AS msg) v
                   WHERE m.provider_message_id = v.id AND m.status = 'sent'""",
                ([f[0] for f in failed], [f[1] for f in failed], [f[2] for f in failed]),
            )
            # A message that failed at the carrier is not charged (SOLAPI refunds it).
            conn.execute(
                "UPDATE public.message_logs SET cost = 0 WHERE provider_message_id = ANY(%s)",
                ([f[0] for f in failed],),
            )
    return {
        "checked": len(ids),
        "delivered": len(delivered),
        "failed": len(failed),
        "waiting": len(ids) - len(delivered) - len(failed),
    }
