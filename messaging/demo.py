"""`python -m messaging.demo --scale S`: the CRM tables in MariaDB and the platform's demo rows in
Supabase.

MariaDB (admin connection, the app itself only reads): ``customers``, ``subscriptions``,
``payments`` with realistic Korean data. Supabase: message templates (SMS, LMS, Alimtalk,
promotion), a variable query template, individual variable mappings, settings, and four
workflows: manual, schedule (every 5 minutes), event (new subscriptions) and webhook.
Deterministic for a seed; re-running leaves existing rows alone.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import click
import psycopg
import typer
from psycopg.types.json import Jsonb

from messaging.demo_rows import CRM_DDL, GIVEN, PLANS, SURNAMES, TEMPLATES, demo_workflows
from resources.environment import apply_local_defaults
from tooling.demo_data import DemoData


def create_crm_tables(conn) -> None:
    with conn.cursor() as cur:
        for ddl in CRM_DDL:
            cur.execute(ddl)


def fill_crm(
    conn: Any,
    customers: int,
    seed: int = 20261121,
    start_id: int = 1,
    today: date = date(2026, 11, 21),
) -> dict[str, int]:
    """Insert ``customers`` customers (ids from ``start_id``), with ~0.8 subscriptions and
    ~2 payments each.

    A few phones are deliberately bad (missing, malformed) and a few duplicated, as in real CRMs.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM subscriptions")
        sub_id = int(cur.fetchone()[0])
    rows = _crm_rows(DemoData(seed=seed).child("messaging"), customers, start_id, sub_id, today)
    _insert_crm(conn, rows)
    if not getattr(conn, "autocommit_mode", True):
        conn.commit()
    return {name: len(table) for name, table in rows.items()}


def _crm_rows(
    data: DemoData, customers: int, start_id: int, sub_id: int, today: date
) -> dict[str, list[tuple[Any, ...]]]:
    """customers / subscriptions / payments rows, drawn from the seeded generator in order."""
    rng = data.rng
    cust: list[tuple[Any, ...]] = []
    subs: list[tuple[Any, ...]] = []
    pays: list[tuple[Any, ...]] = []
    for i in range(start_id, start_id + customers):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        roll = rng.random()
        if roll < 0.01:
            phone = None
        elif roll < 0.02:
            phone = "02-123-456"
        elif roll < 0.03 and cust:
            phone = cust[-1][2]
        else:
            phone = f"010-{rng.randint(2000, 9999):04d}-{rng.randint(0, 9999):04d}"
        created = datetime(2024, 1, 1) + timedelta(seconds=rng.randint(0, 86400 * 680))
        grade = rng.choice(["일반", "일반", "실버", "골드", "VIP"])
        opt_in = 1 if rng.random() < 0.6 else 0
        birth = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
        cust.append((i, name, phone, f"user{i}@example.kr", grade, opt_in, birth, created, created))
        if rng.random() < 0.8:
            sub_id += 1
            plan, fee = rng.choice(PLANS)
            start = created.date() + timedelta(days=rng.randint(0, 30))
            end = today + timedelta(days=rng.randint(-60, 120))
            status = "active" if end >= today else rng.choice(["expired", "cancelled"])
            subs.append((sub_id, i, plan, status, start, end, fee, created))
            for _ in range(rng.randint(1, 3)):
                paid = datetime.combine(start, datetime.min.time()) + timedelta(
                    days=rng.randint(0, 300), minutes=rng.randint(0, 1440)
                )
                method = rng.choice(["카드", "계좌이체", "카카오페이", "네이버페이"])
                outcome = rng.choice(["paid"] * 8 + ["refunded", "failed"])
                pays.append((i, sub_id, fee, method, outcome, paid))
    return {"customers": cust, "subscriptions": subs, "payments": pays}


CRM_INSERTS = {
    "customers": "INSERT INTO customers (id, name, phone, email, grade, marketing_opt_in,"
    " birth_date, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
    "subscriptions": "INSERT INTO subscriptions (id, customer_id, plan_name, status, start_date,"
    " end_date, monthly_fee, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
    "payments": "INSERT INTO payments (customer_id, subscription_id, amount, method, status,"
    " paid_at) VALUES (%s, %s, %s, %s, %s, %s)",
}


def _insert_crm(conn: Any, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with conn.cursor() as cur:
        for table, insert in CRM_INSERTS.items():
            for start in range(0, len(rows[table]), 5000):
                cur.executemany(insert, rows[table][start : start + 5000])


def seed_platform(
    conn: Any, *, now: datetime | None = None, event_start_after: int = 0
) -> dict[str, str]:
    """Templates, variable mappings, settings and the four demo workflows (idempotent by name).

    Returns:
        ``template:<key>`` / ``workflow:<key>`` -> row id.
    """
    ids = _seed_templates(conn)
    _seed_variables(conn)
    ids.update(_seed_workflows(conn, ids, event_start_after))
    return ids


def _seed_templates(conn: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    for key, t in TEMPLATES.items():
        row = conn.execute(
            "SELECT id FROM public.message_templates WHERE name = %s", (t["name"],)
        ).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO public.message_templates (name, category, message_type,"
                " template_code, content, variables, buttons, created_by)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 'demo') RETURNING id",
                (
                    t["name"],
                    t["category"],
                    t["message_type"],
                    t.get("template_code"),
                    t["content"],
                    Jsonb(_vars(t["content"])),
                    Jsonb(t.get("buttons", [])),
                ),
            ).fetchone()
        ids[f"template:{key}"] = str(row[0])
    return ids


def _seed_variables(conn: Any) -> None:
    """The query template, the individual variable mappings and the opt-out line setting."""
    conn.execute(
        "INSERT INTO public.variable_query_templates"
        " (template_name, description, query_sql, variables)"
        " VALUES ('last_payment', '고객의 최근 결제금액', %s, %s)"
        " ON CONFLICT (template_name) DO NOTHING",
        (
            "SELECT amount FROM payments WHERE customer_id = %(customer_id)s AND status = 'paid'"
            " ORDER BY paid_at DESC LIMIT 1",
            Jsonb(["customer_id"]),
        ),
    )
    for name, display, kind, field, column, default in [
        ("today", "오늘 날짜", "function", "today", None, None),
        ("company", "회사명", "static", "건강구독", None, None),
        ("support_phone", "고객센터", "static", "1588-0000", None, None),
    ]:
        exists = conn.execute(
            "SELECT 1 FROM public.individual_variable_mappings WHERE variable_name = %s",
            (name,),
        ).fetchone()
        if exists is None:
            conn.execute(
                "INSERT INTO public.individual_variable_mappings (variable_name, display_name,"
                " source_type, source_field, selected_column, default_value)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (name, display, kind, field, column, default),
            )
    conn.execute(
        "INSERT INTO public.system_settings (setting_key, setting_value, description, category)"
        " VALUES ('messaging.opt_out_line', %s, '광고 메시지 무료수신거부 안내', 'messaging')"
        " ON CONFLICT (setting_key) DO NOTHING",
        (Jsonb("무료수신거부 080-855-0000"),),
    )
    conn.execute(
        "INSERT INTO public.system_settings (setting_key, setting_value, description, category)"
        " VALUES ('messaging.ad_sender', %s, '광고 메시지 발신자 이름과 연락처', 'messaging')"
        " ON CONFLICT (setting_key) DO NOTHING",
        (Jsonb({"name": "데모상점", "contact": "02-000-0000"}),),
    )


def _seed_workflows(
    conn: Any, template_ids: dict[str, str], event_start_after: int
) -> dict[str, str]:
    ids: dict[str, str] = {}
    for key, w in demo_workflows(event_start_after).items():
        row = conn.execute(
            "SELECT id FROM public.workflows WHERE name = %s", (w["name"],)
        ).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO public.workflows (name, description, status, trigger_type,"
                " trigger_config, target_config, message_config, variables, schedule_config,"
                " created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'demo') RETURNING id",
                (
                    w["name"],
                    f"demo {key} workflow",
                    w["status"],
                    w["trigger_type"],
                    Jsonb(w["trigger"]),
                    Jsonb(w["target"]),
                    Jsonb({"template_id": template_ids[f"template:{w['template']}"]}),
                    Jsonb(w["variables"]),
                    Jsonb(w["schedule"]),
                ),
            ).fetchone()
        ids[f"workflow:{key}"] = str(row[0])
    return ids


@contextmanager
def my_reader_free_customer(database: str):
    """The newest customer with a mobile phone and a subscription (admin connection; demo only)."""
    from tooling.services import MySQLAdmin

    conn = MySQLAdmin().connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.id FROM customers c JOIN subscriptions s ON s.customer_id = c.id"
                " WHERE c.phone LIKE '010-%%' ORDER BY c.id DESC LIMIT 1"
            )
            row = cur.fetchone()
        yield None if row is None else int(row[0])
    finally:
        conn.close()


def _vars(content: str) -> list[str]:
    from messaging.transform import placeholders

    return placeholders(content)


app = typer.Typer(add_completion=False)


@app.command()
def seed(
    scale: str = typer.Option("demo", "--scale", help="dataset scale"),
    seed: int = typer.Option(20261121, "--seed", help="dataset seed"),
) -> int:
    """Seed the CRM tables (unless they have rows) and the platform's demo rows."""
    from resources.postgres import PostgresResource
    from resources.shared import mysql, supabase_db

    database = mysql.process_config_and_initialize().database
    max_sub = _seed_crm(database, scale, seed)
    db: PostgresResource = supabase_db.process_config_and_initialize()
    with psycopg.connect(db.dsn) as conn:
        # The event workflow starts 5 subscriptions back, so the demo shows it firing by itself.
        ids = seed_platform(conn, event_start_after=max(0, max_sub - 5))
        conn.commit()
    _store_webhook_event(
        db.model_copy(update={"application_name": "messaging-demo"}), database, ids
    )
    workflows = len([k for k in ids if k.startswith("workflow:")])
    templates = len([k for k in ids if k.startswith("template:")])
    print(f"[messaging] Supabase: {workflows} workflows, {templates} templates")
    _print_manual_run(ids["workflow:manual"])
    return 0


def _seed_crm(database: str, scale: str, seed: int) -> int:
    """Create and fill the CRM tables in MariaDB; returns the highest subscription id."""
    from tooling.demo_data import scale_factor
    from tooling.services import MySQLAdmin

    my = MySQLAdmin().connect(database)
    try:
        create_crm_tables(my)
        with my.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM customers")
            existing = int(cur.fetchone()[0])
        if existing == 0:
            counts = fill_crm(my, scale_factor(scale), seed)
            print(f"[messaging] MariaDB {database}: {json.dumps(counts)}")
        else:
            print(f"[messaging] MariaDB {database}: {existing} customers already there")
        with my.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM subscriptions")
            return int(cur.fetchone()[0])
    finally:
        my.close()


def _store_webhook_event(db: Any, database: str, ids: dict[str, str]) -> None:
    """One webhook event stored exactly as the endpoint stores it, so the webhook workflow runs
    by itself in the demo even before anyone posts to ``python -m messaging.webhook``."""
    from messaging.webhook import record_event

    with my_reader_free_customer(database) as customer_id:
        if customer_id is not None:
            record_event(
                db,
                ids["workflow:webhook"],
                f"demo-signup-{customer_id}",
                {"customer_id": customer_id},
                None,
            )


def _print_manual_run(workflow_id: str) -> None:
    from messaging.assets import messaging_workflow_run
    from messaging.jobs import run_workflow_job

    config = {"ops": {messaging_workflow_run.op.name: {"config": {"workflow_id": workflow_id}}}}
    print(
        f"[messaging] manual run: dg launch -m messaging.definitions --job {run_workflow_job.name} "
        f"--config-json '{json.dumps(config)}'"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m messaging.demo [--scale S] [--seed N]``; the exit code."""
    apply_local_defaults()
    try:
        code = app(args=argv, prog_name="python -m messaging.demo", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
