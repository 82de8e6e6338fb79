"""PostgreSQL resource: pool, transactions, streaming COPY between the two databases, errors."""

import psycopg
import pytest

from resources.errors import ServiceUnavailable
from resources.postgres import PostgresResource, redact_dsn

pytestmark = pytest.mark.integration


@pytest.fixture
def copy_tables(supabase_db, gfx_source_db):
    gfx_source_db.execute(
        "DROP TABLE IF EXISTS copy_src;"
        " CREATE TABLE copy_src (id bigint PRIMARY KEY, name text, payload jsonb, at timestamptz)"
    )
    supabase_db.execute(
        "DROP TABLE IF EXISTS copy_dst;"
        " CREATE TABLE copy_dst (id bigint PRIMARY KEY, name text, payload jsonb, at timestamptz)"
    )
    gfx_source_db.execute(
        "INSERT INTO copy_src SELECT g, '플레이어 ' || g,"
        " jsonb_build_object('chips', g * 100, 'tags', jsonb_build_array('a', NULL)),"
        " '2026-11-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g"
    )
    gfx_source_db.execute("INSERT INTO copy_src VALUES (0, NULL, NULL, NULL)")
    yield
    gfx_source_db.execute("DROP TABLE copy_src")
    supabase_db.execute("ALTER TABLE copy_dst ENABLE ROW LEVEL SECURITY; DROP TABLE copy_dst")


def test_binary_copy_streams_rows_between_databases_exactly(
    copy_tables, supabase_db, gfx_source_db
):
    with supabase_db.transaction() as conn:
        moved = gfx_source_db.copy_query_into(
            supabase_db,
            conn,
            "SELECT id, name, payload, at FROM copy_src WHERE id <= %s",
            "copy_dst",
            ["id", "name", "payload", "at"],
            params=(4000,),
        )
    assert moved > 0
    digest = "SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM {} t WHERE id <= 4000"
    assert supabase_db.fetch_value(digest.format("copy_dst")) == gfx_source_db.fetch_value(
        digest.format("copy_src")
    )
    assert supabase_db.fetch_value("SELECT count(*) FROM copy_dst") == 4001
    assert supabase_db.fetch_one("SELECT name, payload FROM copy_dst WHERE id = 0") == {
        "name": None,
        "payload": None,
    }


def test_a_failed_transaction_leaves_nothing_behind(copy_tables, supabase_db, gfx_source_db):
    with pytest.raises(psycopg.errors.UniqueViolation), supabase_db.transaction() as conn:
        gfx_source_db.copy_query_into(
            supabase_db,
            conn,
            "SELECT id, name, payload, at FROM copy_src",
            "copy_dst",
            ["id", "name", "payload", "at"],
        )
        conn.execute("INSERT INTO copy_dst (id) VALUES (1)")
    assert supabase_db.fetch_value("SELECT count(*) FROM copy_dst") == 0
    # the pool hands out a clean connection afterwards
    assert supabase_db.fetch_value("SELECT 1") == 1


def test_unreachable_database_is_a_clear_service_unavailable():
    db = PostgresResource(
        dsn="postgresql://postgres:secret@127.0.0.1:1/nowhere",
        connect_attempts=2,
        pool_timeout_s=1,
        application_name="unreachable-test",
    )
    with pytest.raises(ServiceUnavailable) as info:
        db.fetch_value("SELECT 1")
    assert "127.0.0.1" in str(info.value) and "secret" not in str(info.value)


def test_redact_dsn_never_shows_the_password():
    assert (
        redact_dsn("postgresql://u:hunter2@db.example:6543/postgres")
        == "postgresql://u@db.example:6543/postgres"
    )


def test_statement_timeout_is_applied(test_databases):
    db = PostgresResource(
        dsn=test_databases.supabase_url, statement_timeout_ms=200, application_name="timeout-test"
    )
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.fetch_value("SELECT pg_sleep(2)")
