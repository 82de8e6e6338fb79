"""Personal data is service_role only: message_logs, data_quarantine, user_activity_logs, webhook
payloads and system_settings. authenticated reads views without phone numbers or message text
(masked numbers where a number is needed); anon reads nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.integration

PRIVATE = [
    "message_logs",
    "data_quarantine",
    "user_activity_logs",
    "messaging_webhook_events",
    "system_settings",
]
VIEWS = {
    "message_logs_safe": "message_logs",
    "data_quarantine_safe": "data_quarantine",
    "user_activity_logs_safe": "user_activity_logs",
    "messaging_webhook_events_safe": "messaging_webhook_events",
    "system_settings_safe": "system_settings",
}
PERSONAL_COLUMNS = {
    "recipient_phone",
    "recipient_name",
    "message_content",
    "variables_used",
    "payload",
    "ip_address",
    "source_ip",
    "user_agent",
    "setting_value",
}


def _as(role: str, conn: psycopg.Connection, query: str, params=None):
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


def _readable_rows(role: str, conn: psycopg.Connection, relation: str) -> int | None:
    """Rows ``role`` can read from ``relation``; None when the read itself is refused."""
    try:
        return len(_as(role, conn, f"SELECT * FROM public.{relation}"))
    except psycopg.errors.InsufficientPrivilege:
        return None


@pytest.fixture
def conn(test_databases):
    # Letters only: the phone mask has no word boundaries, so digits in a uuid could be masked.
    marker = "rls-" + uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as c:
        wid = c.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
            " message_config) VALUES (%s, 'webhook', 'active', '{}', '{}') RETURNING id",
            (marker,),
        ).fetchone()[0]
        log_id = c.execute(
            "INSERT INTO public.message_logs (recipient_phone, recipient_name, message_type,"
            " message_content, status, error_message) VALUES ('01012345678', '김민준', 'sms',"
            " '김민준님 안녕하세요', 'failed', %s) RETURNING id",
            (marker,),
        ).fetchone()[0]
        c.execute(
            "INSERT INTO public.data_quarantine (domain, source, item_id, reason, payload)"
            " VALUES ('messaging', 'mysql/customers', '7', %s, %s)",
            (
                f"INVALID_PHONE: not a Korean mobile number: '010-9876-5432' {marker}",
                Jsonb({"phone": "010-9876-5432"}),
            ),
        )
        c.execute(
            "INSERT INTO public.user_activity_logs (user_id, action, resource_id, ip_address,"
            " user_agent) VALUES ('webhook', 'webhook.received', %s, '10.1.2.3', 'crm/1.0')",
            (marker,),
        )
        c.execute(
            "INSERT INTO public.messaging_webhook_events (event_id, workflow_id, payload,"
            " source_ip)"
            " VALUES (%s, %s, %s, '10.1.2.3')",
            (marker, wid, Jsonb({"phone": "01055556666"})),
        )
        c.execute(
            "INSERT INTO public.system_settings (setting_key, setting_value, description)"
            " VALUES (%s, %s, 'secret-ish')",
            (marker, Jsonb({"token": "do-not-show"})),
        )
        c.log_id = log_id  # type: ignore[attr-defined]
        c.marker = marker  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize("table", PRIVATE)
def test_authenticated_and_anon_read_nothing_of_the_private_tables(conn, table):
    for role in ("authenticated", "anon"):
        assert _readable_rows(role, conn, table) in (None, 0), f"{role} reads {table}"


@pytest.mark.parametrize("table", PRIVATE)
def test_authenticated_cannot_write_the_private_tables(conn, table):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as("authenticated", conn, f"DELETE FROM public.{table}")


@pytest.mark.parametrize("table", PRIVATE)
def test_service_role_reads_the_private_tables(conn, table):
    assert _readable_rows("service_role", conn, table)


@pytest.mark.parametrize(("view", "table"), sorted(VIEWS.items()))
def test_authenticated_views_carry_no_personal_columns(conn, view, table):
    rows = _as("authenticated", conn, f"SELECT * FROM public.{view} LIMIT 0")
    assert rows == []
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s",
            (view,),
        )
    }
    assert columns, f"{view} does not exist"
    assert not columns & PERSONAL_COLUMNS, columns & PERSONAL_COLUMNS
    assert _readable_rows("authenticated", conn, view), f"authenticated cannot read {view}"
    assert _readable_rows("anon", conn, view) in (None, 0)


def test_message_log_view_masks_the_number(conn):
    rows = _as(
        "authenticated",
        conn,
        "SELECT recipient_phone_masked, status FROM public.message_logs_safe WHERE id = %s",
        (conn.log_id,),
    )
    assert rows == [("010-****-5678", "failed")]


def test_quarantine_view_masks_numbers_in_the_reason(conn):
    # Only this test's row: other rows' markers (uuids in earlier code) may contain "9876".
    rows = _as(
        "authenticated",
        conn,
        "SELECT reason FROM public.data_quarantine_safe WHERE item_id = '7'"
        " AND source = 'mysql/customers' AND reason LIKE %s",
        (f"% {conn.marker}",),
    )
    assert rows == [(f"INVALID_PHONE: not a Korean mobile number: '010-****-5432' {conn.marker}",)]


def test_views_the_app_already_reads_still_work_for_authenticated(conn):
    assert _readable_rows("authenticated", conn, "workflow_summary") is not None
    assert _readable_rows("authenticated", conn, "workflows")


def test_quarantine_view_hides_other_domains_reasons(conn):
    """Other domains' reasons may quote refused values (a birth date): not for authenticated."""
    conn.execute(
        "INSERT INTO public.data_quarantine (domain, source, item_id, reason)"
        " VALUES ('consultation_backup', 'notion/customers', 'rls-c1',"
        " 'bad_birth_date: 1987-02-30')"
    )
    rows = _as(
        "authenticated",
        conn,
        "SELECT item_id, reason FROM public.data_quarantine_safe WHERE item_id = 'rls-c1'",
    )
    assert rows == [("rls-c1", None)]
