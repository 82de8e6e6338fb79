"""PostgreSQL resource (pool, transactions, streaming COPY between the two databases), environment
helper and local defaults, demo data determinism and realism."""

import io

import filetype
import psycopg
import pytest
from PIL import Image

from resources.environment import (
    LOCAL_DEFAULTS,
    UnknownEnvironment,
    apply_local_defaults,
    current_environment,
)
from resources.errors import ServiceUnavailable
from resources.postgres import PostgresResource, redact_dsn
from tooling.demo_data import DemoData, scale_factor


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


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "local"), ("local", "local"), ("PRODUCTION", "production")]
)
def test_current_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("PLATFORM_ENV", raising=False)
    else:
        monkeypatch.setenv("PLATFORM_ENV", value)
    assert current_environment() == expected


def test_unknown_environment_is_an_error(monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "staging")
    with pytest.raises(UnknownEnvironment, match="staging"):
        current_environment()


def test_local_defaults_fill_only_unset_variables_and_never_in_production():
    env = {"PLATFORM_ENV": "local", "NOTION_TOKEN": "mine"}
    filled = apply_local_defaults(env)
    assert env["NOTION_TOKEN"] == "mine" and "NOTION_TOKEN" not in filled
    assert env["SUPABASE_DB_URL"] == LOCAL_DEFAULTS["SUPABASE_DB_URL"]
    assert env["MESSAGING_SEND_MODE"] == "dry_run"
    prod = {"PLATFORM_ENV": "production"}
    assert apply_local_defaults(prod) == [] and prod == {"PLATFORM_ENV": "production"}


def test_demo_data_is_deterministic_and_streams_are_independent():
    a, b = DemoData(seed=5, scale="tiny"), DemoData(seed=5, scale="tiny")
    assert [a.korean_name() for _ in range(5)] == [b.korean_name() for _ in range(5)]
    assert [a.mobile_phone() for _ in range(5)] == [b.mobile_phone() for _ in range(5)]
    assert a.image_bytes("png") == b.image_bytes("png")
    assert (
        DemoData(seed=5).child("gfx").korean_name() == DemoData(seed=5).child("gfx").korean_name()
    )
    assert (
        DemoData(seed=6).korean_name() != DemoData(seed=5).korean_name()
        or DemoData(seed=6).address() != DemoData(seed=5).address()
    )


def test_demo_data_is_realistic():
    d = DemoData(seed=1)
    name, phone, address = d.korean_name(), d.mobile_phone(), d.address()
    assert all("\uac00" <= ch <= "\ud7a3" for ch in name) and 2 <= len(name) <= 4
    assert phone.startswith("010-") and len(phone) == 13
    assert any("\uac00" <= ch <= "\ud7a3" for ch in address)
    for fmt, mime in (("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")):
        data = d.image_bytes(fmt)
        assert filetype.guess_mime(data) == mime
        assert Image.open(io.BytesIO(data)).size == (64, 48)


@pytest.mark.parametrize(
    ("scale", "rows"), [("tiny", 20), ("large", 1_000_000), ("1234", 1234), (99, 99)]
)
def test_scale_factor(scale, rows):
    assert scale_factor(scale) == rows


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="unknown scale"):
        scale_factor("gigantic")
