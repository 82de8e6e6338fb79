"""Chaos path: a live send of a workflow to every CRM customer, SIGKILLed at random points.

The CRM tables (``messaging.demo``: a few phones missing, malformed or duplicated, as in real
CRMs) are filled in the run's private MariaDB schema and the demo platform rows plus a workflow
to every customer in its private Supabase database; the SOLAPI stand-in runs in this process on
a free port. Each execution (a new execution key) is attempted by
``tests/messaging/_chaos_runner.py`` in a child process that SIGKILLs itself at a seeded random
point: before or after the k-th call of a step of the group flow (create group, claim rows, add
messages, record registration, send group, record the sent group), or 0.3 s into a group send
that the stand-in holds (the request left, its answer is never read). Meanwhile the stand-in
loses answers (processed, answered 503), its lists lag, and it injects 429 bursts and a 5xx
rate. An execution is attempted until it is killed four times, then finished untouched (faults
off). Verdict per execution, from the outside: every recipient's ``message_logs`` row settled
(``pending`` left = lost), every sent recipient accepted by SOLAPI exactly once (0 = lost, > 1 =
duplicated), no idempotency key accepted twice, unusable phones quarantined with a reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tooling.chaos.core import ROOT, ChaosContext, PathResult
from tooling.chaos.proxy import CuttingProxy
from tooling.services import MySQLAdmin

CUSTOMERS = 60
CHUNK = 7
MAX_KILLS_PER_EXECUTION = 4


def _setup(ctx: ChaosContext) -> str:
    """CRM rows, platform rows and a workflow to every customer; returns the workflow id."""
    from messaging.demo import create_crm_tables, fill_crm, seed_platform

    my = MySQLAdmin().connect(ctx.mysql_database)
    try:
        create_crm_tables(my)
        fill_crm(my, CUSTOMERS, seed=ctx.rng.randrange(1 << 30))
    finally:
        my.close()
    with psycopg.connect(ctx.supabase_url) as conn:
        seed_platform(conn)
        row = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES ('카오스 공지', 'notification', 'sms', '#{name}님 공지입니다') RETURNING id"
        ).fetchone()
        assert row is not None
        workflow = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
            " message_config) VALUES ('카오스 공지', 'manual', 'active', %s, %s) RETURNING id",
            (Jsonb({"table": "customers"}), Jsonb({"template_id": str(row[0])})),
        ).fetchone()
        assert workflow is not None
    return str(workflow[0])


def _attempt(
    workflow_id: str, key: str, url: str, seed: int, log: Any, via: dict[str, str] | None = None
) -> int:
    env = {**os.environ, **(via or {})}
    if seed < 0:
        env["MESSAGING_CHAOS_NO_KILL"] = "1"
    argv = [sys.executable, "-m", "tests.messaging._chaos_runner", workflow_id, key, url]
    return subprocess.run(
        [*argv, str(CHUNK), str(seed)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=600,
    ).returncode


def _verify(ctx: ChaosContext, key: str, state: Any, result: PathResult) -> None:
    from messaging import constants as C

    with psycopg.connect(ctx.supabase_url, row_factory=dict_row) as conn:
        run = conn.execute(
            "SELECT id, status FROM public.workflow_runs WHERE execution_key = %s", (key,)
        ).fetchone()
        if run is None or run["status"] != "completed":
            result.lost += CUSTOMERS
            result.notes.append(f"execution {key}: run {run and run['status']} (not completed)")
            return
        logs = conn.execute(
            "SELECT idempotency_key, status, error_code, error_message FROM public.message_logs"
            " WHERE workflow_run_id = %s",
            (run["id"],),
        ).fetchall()
        named = conn.execute(
            "SELECT count(*) FILTER (WHERE coalesce(trim(reason), '') = '') AS unnamed"
            " FROM public.data_quarantine WHERE domain = %s",
            (C.DOMAIN,),
        ).fetchone()
    if not logs:
        result.lost += CUSTOMERS
        result.notes.append(f"execution {key}: no recipients logged")
    tally(logs, state.accepted_by_key, result)
    assert named is not None
    result.unnamed_quarantine = int(named["unnamed"])


def tally(logs: list[dict[str, Any]], accepted_by_key: dict[str, int], result: PathResult) -> None:
    """Count one execution's recipients: compared, lost (left pending, or marked sent yet never
    accepted, or failed/cancelled for another reason than an unusable phone), duplicated
    (accepted more than once, or a quarantined phone accepted at all), quarantined."""
    from messaging import constants as C

    result.compared += len(logs)
    for r in logs:
        accepted = accepted_by_key.get(r["idempotency_key"], 0)
        if r["status"] == "pending":
            result.lost += 1
            _note(result, f"{r['idempotency_key']}: still pending")
        elif r["status"] in ("sent", "delivered"):
            if accepted == 0:
                result.lost += 1
                _note(result, f"{r['idempotency_key']}: {r['status']} but never accepted")
            elif accepted > 1:
                result.duplicated += accepted - 1
                _note(result, f"{r['idempotency_key']}: accepted {accepted} times")
        elif r["error_code"] == C.ERR_PHONE:  # unusable phone: quarantined, never sent
            result.quarantined += 1
            if accepted:
                result.duplicated += accepted
                _note(result, f"{r['idempotency_key']}: bad phone, yet accepted")
        else:  # refused or cancelled: the stand-in refuses nothing here, so it was not sent
            result.lost += 1
            _note(result, f"{r['idempotency_key']}: {r['status']} {r['error_code']}")


def _note(result: PathResult, text: str) -> None:
    if len(result.notes) < 10:
        result.notes.append(text)


def run(ctx: ChaosContext, log_dir: Path) -> PathResult:
    from standins import solapi as solapi_standin
    from standins.base import EmulatorServer
    from tests.messaging._chaos_runner import choose

    result = PathResult("messaging")
    started = time.monotonic()
    workflow_id = _setup(ctx)
    _app, state, injector = solapi_standin.build()
    state.delivery_delay_s = 0.0
    server = EmulatorServer(_app, name="solapi").start()
    rng = ctx.rng
    lost_answers = executions = crashes = 0
    # Killed attempts reach MariaDB and Supabase through proxies that cut connections at random;
    # the untouched last attempt of an execution goes direct.
    mysql_proxy = CuttingProxy(
        os.environ.get("MYSQL_HOST", "127.0.0.1"),
        int(os.environ.get("MYSQL_PORT", "3306")),
        cut_rate=0.1,
        seed=rng.randrange(1 << 30),
    ).start()
    ctx.proxies.append(mysql_proxy)
    sb_url, sb_proxy = ctx.proxied(ctx.supabase_url, cut_rate=0.05)
    via = {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(mysql_proxy.listen_port)}
    via["SUPABASE_DB_URL"] = sb_url
    try:
        with open(log_dir / "messaging.log", "ab") as log:
            while result.kills < ctx.kills:
                key = f"chaos:{uuid.uuid4()}"
                executions += 1
                for attempt in range(MAX_KILLS_PER_EXECUTION + 1):
                    # the last attempt of an execution (or once the kills are done) is not killed
                    last = attempt == MAX_KILLS_PER_EXECUTION or result.kills >= ctx.kills
                    seed = -1 if last else rng.randrange(1 << 30)
                    if last:
                        injector.configure(burst_429=0, error_rate=0.0)  # counters kept
                        state.lose_responses = state.hold_sends = 0
                        state.list_lag_s = 0.0
                    else:
                        state.list_lag_s = rng.choice([0.0, 0.5, 2.0])
                        state.lose_responses = 1 if rng.random() < 0.3 else 0
                        injector.configure(
                            burst_429=rng.choice([0, 0, 2, 5]),
                            retry_after_s=1,
                            error_rate=rng.choice([0.0, 0.0, 0.05, 0.15]),
                            error_status=rng.choice([500, 502, 503]),
                            seed=rng.randrange(1 << 30),
                        )
                        if choose(seed)[0] == "in_flight":
                            state.hold_sends, state.hold_s = 1, 1.0
                    lose_before = state.lose_responses
                    code = _attempt(workflow_id, key, server.url, seed, log, None if last else via)
                    deadline = time.monotonic() + 30
                    while state.holding and time.monotonic() < deadline:
                        time.sleep(0.05)
                    state.hold_sends = 0
                    lost_answers += lose_before - state.lose_responses
                    if code == -9:
                        result.kills += 1
                        continue
                    if code != 0:  # gave up under the injected faults: attempted again
                        crashes += 1
                        if last:
                            result.notes.append(f"execution {key}: unkilled run exited {code}")
                        continue
                    break
                _verify(ctx, key, state, result)
        dup_keys = state.duplicates()
        if dup_keys:
            result.notes.append(f"SOLAPI saw {len(dup_keys)} idempotency keys twice")
    finally:
        server.stop()
    injected = injector.injected
    cuts = mysql_proxy.cuts + sb_proxy.cuts
    result.faults = injected["429"] + injected["error"] + lost_answers + cuts
    result.notes.append(
        f"{executions} executions; faults: {injected['429']} × 429, {injected['error']} × 5xx,"
        f" {lost_answers} lost answers, {mysql_proxy.cuts} MariaDB and {sb_proxy.cuts} Supabase"
        f" connections cut; {crashes} runs gave up under faults"
    )
    result.wall_s = time.monotonic() - started
    return result
