"""The messaging schema in Supabase: tables, indexes, triggers, functions, views and RLS."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.integration

TABLES = [
    "workflows",
    "workflow_runs",
    "message_templates",
    "template_usage_logs",
    "individual_variable_mappings",
    "variable_query_templates",
    "message_logs",
    "system_settings",
    "user_activity_logs",
    "daily_statistics",
]
INDEXES = [
    "idx_workflows_status",
    "idx_workflows_created_at",
    "idx_workflows_next_run",
    "idx_workflow_runs_workflow_id",
    "idx_workflow_runs_status",
    "idx_workflow_runs_started_at",
    "idx_message_templates_status",
    "idx_message_templates_message_type",
    "idx_message_templates_category",
    "idx_message_logs_workflow_run_id",
    "idx_message_logs_status",
    "idx_message_logs_sent_at",
    "idx_message_logs_recipient_phone",
    "idx_user_activity_logs_user_id",
    "idx_user_activity_logs_created_at",
    "idx_daily_statistics_stat_date",
]


def test_tables_indexes_triggers_views_exist(supabase_db):
    present = {
        r["tablename"]
        for r in supabase_db.fetch_all(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert set(TABLES) <= present
    indexes = {
        r["indexname"]
        for r in supabase_db.fetch_all(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
        )
    }
    assert set(INDEXES) <= indexes
    triggers = {
        r["tgname"]
        for r in supabase_db.fetch_all("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    }
    assert {
        "update_workflows_updated_at",
        "update_message_templates_updated_at",
        "update_template_usage_count",
    } <= triggers
    views = {
        r["viewname"]
        for r in supabase_db.fetch_all("SELECT viewname FROM pg_views WHERE schemaname = 'public'")
    }
    assert {"workflow_summary", "daily_stats_summary"} <= views
    rls = {
        r["relname"]: r["relrowsecurity"]
        for r in supabase_db.fetch_all(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relnamespace = "
            "'public'::regnamespace AND relkind = 'r'"
        )
    }
    assert all(rls[t] for t in TABLES)


def test_checks_reject_bad_values(supabase_db):
    with pytest.raises(psycopg.errors.CheckViolation):
        supabase_db.execute(
            "INSERT INTO public.workflows (name, trigger_type) VALUES ('x', 'cron')"
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        supabase_db.execute(
            "INSERT INTO public.message_templates (name, message_type, content) VALUES ('x', "
            "'mms', 'c')"
        )


def test_usage_count_and_updated_at_triggers(supabase_db):
    with supabase_db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, message_type, content, updated_at)"
            " VALUES ('trg', 'sms', 'hi', now() - interval '1 day') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO public.template_usage_logs (template_id) VALUES (%s), (%s)", (tid, tid)
        )
    row = supabase_db.fetch_one(
        "SELECT usage_count, last_used_at, updated_at > now() - interval '1 minute' AS fresh"
        " FROM public.message_templates WHERE id = %s",
        (tid,),
    )
    assert row["usage_count"] == 2 and row["last_used_at"] is not None and row["fresh"]


def test_views_compute_summary(supabase_db):
    supabase_db.execute(
        "INSERT INTO public.daily_statistics (stat_date, messages_sent, messages_failed, "
        "total_cost)"
        " VALUES ('2020-01-01', 200, 50, 1000) ON CONFLICT (stat_date) DO NOTHING"
    )
    row = supabase_db.fetch_one(
        "SELECT success_rate FROM public.daily_stats_summary WHERE stat_date = '2020-01-01'"
    )
    assert float(row["success_rate"]) == 75.0
    with supabase_db.transaction() as conn:
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type) VALUES ('sum', 'manual') RETURNING "
            "id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO public.workflow_runs (workflow_id, status, total_cost) VALUES (%s, "
            "'completed', 10),"
            " (%s, 'failed', 5)",
            (wid, wid),
        )
    row = supabase_db.fetch_one("SELECT * FROM public.workflow_summary WHERE id = %s", (wid,))
    assert (
        row["total_runs"],
        row["successful_runs"],
        row["failed_runs"],
        float(row["total_cost"]),
    ) == (2, 1, 1, 15.0)


@pytest.mark.parametrize(
    "role, can_read, can_write",
    [("anon", False, False), ("authenticated", True, False), ("service_role", True, True)],
)
def test_rls_authenticated_reads_service_role_writes(supabase_db, role, can_read, can_write):
    supabase_db.execute(
        "INSERT INTO public.workflows (name, trigger_type) VALUES ('rls-visible', 'manual')"
    )
    with supabase_db.connection() as conn:
        conn.execute(f"SET ROLE {role}")
        conn.commit()  # a SET inside a rolled-back transaction would be undone
        try:
            try:
                n = conn.execute(
                    "SELECT count(*) FROM public.workflows WHERE name = 'rls-visible'"
                ).fetchone()[0]
                read = n > 0
            except psycopg.errors.InsufficientPrivilege:
                read = False
            conn.rollback()
            try:
                conn.execute(
                    "INSERT INTO public.workflows (name, trigger_type) VALUES ('by-role', 'manual')"
                )
                wrote = True
            except psycopg.errors.InsufficientPrivilege:
                wrote = False
            conn.rollback()
        finally:
            conn.execute("RESET ROLE")
            conn.commit()
    assert (read, wrote) == (can_read, can_write)


def test_declared_column_schemas_match_the_database(supabase_db):
    from messaging.assets import COLUMN_SCHEMAS

    for table, schema in COLUMN_SCHEMAS.items():
        actual = [
            r["column_name"]
            for r in supabase_db.fetch_all(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = %s"
                " ORDER BY ordinal_position",
                (table,),
            )
        ]
        assert [c.name for c in schema.columns] == actual, table
