"""`python -m messaging.demo --scale S`: the CRM tables in MariaDB and the platform's demo rows in
Supabase.

MariaDB (admin connection, the app itself only reads): ``customers``, ``subscriptions``,
``payments`` with realistic Korean data. Supabase: message templates (SMS, LMS, Alimtalk,
promotion), a variable query template, individual variable mappings, settings, and four
workflows: manual, schedule (every 5 minutes), event (new subscriptions) and webhook.
Deterministic for a seed; re-running leaves existing rows alone.
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from psycopg.types.json import Jsonb

from resources.environment import LOCAL_DEFAULTS, apply_local_defaults
from tooling.demo_data import DemoData

CRM_DDL = [
    """CREATE TABLE IF NOT EXISTS customers (
        id INT PRIMARY KEY AUTO_INCREMENT,
        name VARCHAR(100) NOT NULL,
        phone VARCHAR(20),
        email VARCHAR(100),
        grade VARCHAR(20) NOT NULL DEFAULT '일반',
        marketing_opt_in TINYINT(1) NOT NULL DEFAULT 0,
        birth_date DATE,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
        KEY idx_customers_phone (phone),
        KEY idx_customers_updated_at (updated_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id INT PRIMARY KEY AUTO_INCREMENT,
        customer_id INT,
        plan_name VARCHAR(50) NOT NULL,
        status VARCHAR(50),
        start_date DATE,
        end_date DATE,
        monthly_fee INT NOT NULL DEFAULT 0,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (customer_id) REFERENCES customers(id),
        KEY idx_subscriptions_status (status),
        KEY idx_subscriptions_end_date (end_date)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    """CREATE TABLE IF NOT EXISTS payments (
        id INT PRIMARY KEY AUTO_INCREMENT,
        customer_id INT NOT NULL,
        subscription_id INT,
        amount INT NOT NULL,
        method VARCHAR(20) NOT NULL,
        status VARCHAR(20) NOT NULL,
        paid_at DATETIME NOT NULL,
        FOREIGN KEY (customer_id) REFERENCES customers(id),
        FOREIGN KEY (subscription_id) REFERENCES subscriptions(id),
        KEY idx_payments_paid_at (paid_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
]

PLANS = [
    ("건강기능식품 정기배송", 39_000),
    ("종합비타민 구독", 25_000),
    ("유산균 프리미엄", 32_000),
    ("오메가3 패밀리", 45_000),
    ("관절케어 플랜", 52_000),
]
SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = [
    "민준",
    "서연",
    "도윤",
    "지우",
    "하준",
    "서윤",
    "은우",
    "하은",
    "지호",
    "수아",
    "예준",
    "지아",
    "시우",
    "채원",
    "주원",
    "다은",
    "현우",
    "윤서",
    "건우",
    "소율",
]


def create_crm_tables(conn) -> None:
    with conn.cursor() as cur:
        for ddl in CRM_DDL:
            cur.execute(ddl)


def fill_crm(
    conn, customers: int, seed: int = 20261121, start_id: int = 1, today: date = date(2026, 11, 21)
) -> dict[str, int]:
    """Insert ``customers`` customers (ids from ``start_id``), with ~0.8 subscriptions and
    ~2 payments each.

    A few phones are deliberately bad (missing, malformed) and a few duplicated, as in real CRMs.
    """
    data = DemoData(seed=seed).child("messaging")
    rng = data.rng
    cust, subs, pays = [], [], []
    sub_id = None
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM subscriptions")
        sub_id = int(cur.fetchone()[0])
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
        cust.append(
            (
                i,
                name,
                phone,
                f"user{i}@example.kr",
                rng.choice(["일반", "일반", "실버", "골드", "VIP"]),
                1 if rng.random() < 0.6 else 0,
                date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55)),
                created,
                created,
            )
        )
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
                pays.append(
                    (
                        i,
                        sub_id,
                        fee,
                        rng.choice(["카드", "계좌이체", "카카오페이", "네이버페이"]),
                        rng.choice(["paid"] * 8 + ["refunded", "failed"]),
                        paid,
                    )
                )
    with conn.cursor() as cur:
        for start in range(0, len(cust), 5000):
            cur.executemany(
                "INSERT INTO customers (id, name, phone, email, grade, marketing_opt_in, "
                "birth_date,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                cust[start : start + 5000],
            )
        for start in range(0, len(subs), 5000):
            cur.executemany(
                "INSERT INTO subscriptions (id, customer_id, plan_name, status, start_date, "
                "end_date,"
                " monthly_fee, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                subs[start : start + 5000],
            )
        for start in range(0, len(pays), 5000):
            cur.executemany(
                "INSERT INTO payments (customer_id, subscription_id, amount, method, status, "
                "paid_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                pays[start : start + 5000],
            )
    if not getattr(conn, "autocommit_mode", True):
        conn.commit()
    return {"customers": len(cust), "subscriptions": len(subs), "payments": len(pays)}


TEMPLATES = {
    "welcome_sms": {
        "name": "구독 환영 SMS",
        "category": "welcome",
        "message_type": "sms",
        "content": "#{name}님, #{plan_name} 구독을 환영합니다!",
    },
    "renewal_lms": {
        "name": "구독 만료 안내 LMS",
        "category": "reminder",
        "message_type": "lms",
        "content": "안녕하세요 #{고객명}님.\n이용 중인 #{plan_name} 구독이 "
        "#{end_date_kr}에 만료됩니다 (#{days_left}일 남음).\n"
        "최근 결제금액: #{last_payment}원\n고객센터 1588-0000",
    },
    "promo_lms": {
        "name": "VIP 프로모션",
        "category": "promotion",
        "message_type": "lms",
        "content": "#{name}님께만 드리는 #{grade} 등급 혜택! "
        "이번 주 전 상품 15% 할인 (#{today} 기준)",
    },
    "event_kakao": {
        "name": "결제 완료 알림톡",
        "category": "notification",
        "message_type": "kakao",
        "template_code": "KA01TP221027002252645FPwAcO9SguY",
        "content": "[건강구독] #{name}님, #{plan_name} 구독 신청이 완료되었습니다.\n"
        "시작일: #{start_date}",
        "buttons": [
            {"buttonType": "WL", "buttonName": "구독 확인", "linkMo": "https://example.kr/my"}
        ],
    },
}


def seed_platform(
    conn, *, now: datetime | None = None, event_start_after: int = 0
) -> dict[str, str]:
    """Templates, variable mappings, settings and the four demo workflows (idempotent by name)."""
    now = now or datetime.now(UTC)
    ids: dict[str, str] = {}
    for key, t in TEMPLATES.items():
        row = conn.execute(
            "SELECT id FROM public.message_templates WHERE name = %s", (t["name"],)
        ).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO public.message_templates (name, category, message_type, "
                "template_code, content, variables,"
                " buttons, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, 'demo') RETURNING id",
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
    conn.execute(
        "INSERT INTO public.variable_query_templates (template_name, description, query_sql, "
        "variables)"
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
        if (
            conn.execute(
                "SELECT 1 FROM public.individual_variable_mappings WHERE variable_name = %s",
                (name,),
            ).fetchone()
            is None
        ):
            conn.execute(
                "INSERT INTO public.individual_variable_mappings (variable_name, display_name, "
                "source_type,"
                " source_field, selected_column, default_value) VALUES (%s, %s, %s, %s, %s, %s)",
                (name, display, kind, field, column, default),
            )
    conn.execute(
        "INSERT INTO public.system_settings (setting_key, setting_value, description, category)"
        " VALUES ('messaging.opt_out_line', %s, '광고 메시지 무료수신거부 안내', 'messaging')"
        " ON CONFLICT (setting_key) DO NOTHING",
        (Jsonb("무료수신거부 080-855-0000"),),
    )
    expiring_sql = (
        "SELECT c.id, c.name, c.phone, s.plan_name, s.end_date, s.customer_id FROM subscriptions s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.status = 'active'"
        " AND s.end_date BETWEEN CURDATE() AND CURDATE() + INTERVAL 14 DAY ORDER BY s.id"
    )
    new_sub_sql = (
        "SELECT s.id, c.name, c.phone, s.plan_name, s.start_date FROM subscriptions s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.id > %(event_from)s AND s.id <= "
        "%(event_to)s"
        " ORDER BY s.id"
    )
    workflows = {
        "manual": dict(
            name="VIP 프로모션 (수동)",
            trigger_type="manual",
            status="active",
            template="promo_lms",
            target={
                "table": "customers",
                "filters": [
                    {"field": "grade", "op": "=", "value": "VIP"},
                    {"field": "marketing_opt_in", "op": "=", "value": 1},
                ],
            },
            variables={},
            trigger={},
            schedule={},
        ),
        "schedule": dict(
            name="구독 만료 안내 (5분마다)",
            trigger_type="schedule",
            status="active",
            template="renewal_lms",
            target={"sql": expiring_sql, "phone_column": "phone", "name_column": "name"},
            variables={
                "end_date_kr": {
                    "type": "function",
                    "function": "format_date",
                    "argument": "end_date",
                },
                "days_left": {"type": "function", "function": "days_until", "argument": "end_date"},
                "last_payment": {
                    "type": "query",
                    "template": "last_payment",
                    "params": {"customer_id": "customer_id"},
                    "default": "0",
                },
            },
            trigger={},
            schedule={"cron": "*/5 * * * *", "timezone": "Asia/Seoul"},
        ),
        "event": dict(
            name="신규 구독 알림톡 (이벤트)",
            trigger_type="event",
            status="active",
            template="event_kakao",
            target={"sql": new_sub_sql, "phone_column": "phone", "name_column": "name"},
            variables={},
            trigger={
                "table": "subscriptions",
                "key_column": "id",
                "start_after": event_start_after,
            },
            schedule={},
        ),
        "webhook": dict(
            name="웹훅 환영 메시지",
            trigger_type="webhook",
            status="active",
            template="welcome_sms",
            target={
                "sql": "SELECT c.id, c.name, c.phone, s.plan_name FROM customers c JOIN "
                "subscriptions s"
                " ON s.customer_id = c.id WHERE c.id = %(customer_id)s ORDER BY s.id DESC LIMIT 1",
                "phone_column": "phone",
                "name_column": "name",
                "params_from_payload": ["customer_id"],
            },
            variables={},
            trigger={"payload_params": ["customer_id"]},
            schedule={},
        ),
    }
    for key, w in workflows.items():
        row = conn.execute(
            "SELECT id FROM public.workflows WHERE name = %s", (w["name"],)
        ).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO public.workflows (name, description, status, trigger_type, "
                "trigger_config, target_config,"
                " message_config, variables, schedule_config, created_by) VALUES (%s, %s, %s, %s, "
                "%s, %s, %s, %s, %s,"
                " 'demo') RETURNING id",
                (
                    w["name"],
                    f"demo {key} workflow",
                    w["status"],
                    w["trigger_type"],
                    Jsonb(w["trigger"]),
                    Jsonb(w["target"]),
                    Jsonb({"template_id": ids[f"template:{w['template']}"]}),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m messaging.demo")
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args(argv)
    apply_local_defaults()
    import psycopg

    from tooling.demo_data import scale_factor
    from tooling.services import MySQLAdmin

    database = os.environ.get("MYSQL_DATABASE", LOCAL_DEFAULTS["MYSQL_DATABASE"])
    my = MySQLAdmin().connect(database)
    try:
        create_crm_tables(my)
        with my.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM customers")
            existing = int(cur.fetchone()[0])
        if existing == 0:
            counts = fill_crm(my, scale_factor(args.scale), args.seed)
            print(f"[messaging] MariaDB {database}: {json.dumps(counts)}")
        else:
            print(f"[messaging] MariaDB {database}: {existing} customers already there")
        with my.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM subscriptions")
            max_sub = int(cur.fetchone()[0])
    finally:
        my.close()
    with psycopg.connect(os.environ["SUPABASE_DB_URL"]) as conn:
        # The event workflow starts 5 subscriptions back, so the demo shows it firing by itself.
        ids = seed_platform(conn, event_start_after=max(0, max_sub - 5))
        conn.commit()
        # One webhook event stored exactly as the endpoint stores it, so the webhook workflow
        # runs by itself in the demo even before anyone posts to `python -m messaging.webhook`.
        from messaging.webhook import record_event
        from resources.postgres import PostgresResource

        with my_reader_free_customer(database) as customer_id:
            if customer_id is not None:
                record_event(
                    PostgresResource(
                        dsn=os.environ["SUPABASE_DB_URL"], application_name="messaging-demo"
                    ),
                    ids["workflow:webhook"],
                    f"demo-signup-{customer_id}",
                    {"customer_id": customer_id},
                    None,
                )
    print(
        f"[messaging] Supabase: {len([k for k in ids if k.startswith('workflow:')])} workflows, "
        f"{len([k for k in ids if k.startswith('template:')])} templates"
    )
    from messaging.assets import messaging_workflow_run
    from messaging.jobs import run_workflow_job

    config = {
        "ops": {messaging_workflow_run.op.name: {"config": {"workflow_id": ids["workflow:manual"]}}}
    }
    print(
        f"[messaging] manual run: dg launch -m messaging.definitions --job {run_workflow_job.name} "
        f"--config-json '{json.dumps(config)}'"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
