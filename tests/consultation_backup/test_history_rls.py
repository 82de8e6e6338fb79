"""RLS of the tables holding personal data (issue 10 §4): the sync logs, conflicts, history,
purge log and this domain's quarantine entries are service_role only; exercised as the roles."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.integration

PRIVATE = (
    "consultation_sync_logs",
    "consultation_sync_conflicts",
    "consultation_customers_history",
    "consultation_records_history",
    "consultation_image_objects_history",
    "consultation_purge_log",
)


def _as(role: str, conn: psycopg.Connection, query: str):
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else cur.rowcount


def _visible(role: str, conn: psycopg.Connection, query: str) -> list | None:
    """The rows ``role`` sees, or None when it may not read the table at all."""
    try:
        return _as(role, conn, query)
    except psycopg.errors.InsufficientPrivilege:
        return None


@pytest.fixture
def conn(test_databases):
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as c:
        with c.transaction():
            c.execute("TRUNCATE " + ", ".join(f"public.{t}" for t in PRIVATE))
            c.execute(
                "INSERT INTO public.consultation_sync_logs (sync_type, status)"
                " VALUES ('customers', 'completed')"
            )
            c.execute(
                "INSERT INTO public.consultation_sync_conflicts (entity, notion_page_id, strategy,"
                " notion_version, supabase_version) VALUES ('customer', 'p', 'manual', '{}', '{}')"
            )
            for t in PRIVATE[2:5]:
                c.execute(
                    f"INSERT INTO public.{t} (entity_key, valid_from, row_data)"
                    " VALUES ('k', now(), '{\"phone\": \"010-1234-5678\"}')"
                )
            c.execute("INSERT INTO public.consultation_purge_log (kind) VALUES ('retention')")
            c.execute(
                "DELETE FROM public.data_quarantine WHERE domain IN ('consultation_backup',"
                " 'rls-other')"
            )
            c.execute(
                "INSERT INTO public.data_quarantine (domain, source, item_id, reason, payload)"
                " VALUES ('consultation_backup', 'notion/customers', 'p', 'bad',"
                " '{\"phone\": \"010\"}'), ('rls-other', 's', '1', 'r', null)"
            )
        yield c
        with c.transaction():
            c.execute("TRUNCATE " + ", ".join(f"public.{t}" for t in PRIVATE))
            c.execute(
                "DELETE FROM public.data_quarantine WHERE domain IN ('consultation_backup',"
                " 'rls-other')"
            )


@pytest.mark.parametrize("table", PRIVATE)
@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_personal_data_tables_are_invisible_to_anon_and_authenticated(conn, table, role):
    assert _visible(role, conn, f"SELECT * FROM public.{table}") in (None, [])


@pytest.mark.parametrize("table", PRIVATE)
def test_service_role_reads_and_writes_them(conn, table):
    assert len(_as("service_role", conn, f"SELECT * FROM public.{table}")) == 1
    assert _as("service_role", conn, f"DELETE FROM public.{table}") == 1


def test_this_domains_quarantine_entries_are_hidden_from_authenticated(conn):
    seen = _visible(
        "authenticated",
        conn,
        "SELECT domain FROM public.data_quarantine WHERE domain = 'consultation_backup'",
    )
    assert seen in (None, []), "whole Notion pages with phones and embeddings"
    rows = _as(
        "service_role",
        conn,
        "SELECT * FROM public.data_quarantine WHERE domain = 'consultation_backup'",
    )
    assert len(rows) == 1
