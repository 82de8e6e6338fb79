"""Migrations: ordered, idempotent, recorded, refusing edited files, atomic per file."""

import psycopg
import pytest
from psycopg import sql

from resources.errors import MigrationError
from resources.migrations import MIGRATION_SETS, MigrationSet, apply_migrations, discover, status


@pytest.fixture
def scratch_db(test_databases):
    name = f"{test_databases.prefix}_mig"
    admin = (
        test_databases.supabase_url.rsplit("/", 1)[0] + "/postgres"
        if "://" in test_databases.supabase_url
        else None
    )
    info = psycopg.conninfo.conninfo_to_dict(test_databases.supabase_url)
    admin_url = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    del admin


def _set_in(tmp_path, monkeypatch, files: dict[str, str]) -> MigrationSet:
    pkg = tmp_path / "scratchpkg"
    (pkg / "migrations").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, body in files.items():
        (pkg / "migrations" / name).write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    return MigrationSet("scratch", "scratchpkg", "migrations", "supabase")


@pytest.mark.integration
def test_every_real_set_applies_twice_and_the_second_time_is_a_noop(scratch_db):
    supabase_sets = [m for m in MIGRATION_SETS if m.target == "supabase"]
    first = apply_migrations(scratch_db, supabase_sets, log=lambda _m: None)
    assert first.applied, "the shared set has migrations"
    second = apply_migrations(scratch_db, supabase_sets, log=lambda _m: None)
    assert second.applied == []
    assert sorted(second.already_applied) == sorted(first.applied)
    with psycopg.connect(scratch_db) as conn:
        recorded = conn.execute("SELECT count(*) FROM platform.schema_migrations").fetchone()[0]
    assert recorded == len(first.applied)
    assert {r["state"] for r in status(scratch_db, supabase_sets)} == {"applied"}


@pytest.mark.integration
def test_files_apply_in_version_order_and_pending_ones_are_reported(
    scratch_db, tmp_path, monkeypatch
):
    mset = _set_in(
        tmp_path,
        monkeypatch,
        {
            "0002_second.sql": "INSERT INTO public.order_log VALUES ('second');",
            "0001_first.sql": (
                "CREATE TABLE public.order_log (step text);"
                " INSERT INTO public.order_log VALUES ('first');"
            ),
        },
    )
    assert [m.version for m in discover(mset)] == ["0001", "0002"]
    dry = apply_migrations(scratch_db, [mset], dry_run=True, log=lambda _m: None)
    assert dry.pending == ["scratch/0001_first", "scratch/0002_second"] and dry.applied == []
    apply_migrations(scratch_db, [mset], log=lambda _m: None)
    with psycopg.connect(scratch_db) as conn:
        assert [r[0] for r in conn.execute("SELECT step FROM public.order_log")] == [
            "first",
            "second",
        ]


@pytest.mark.integration
def test_an_applied_file_that_was_edited_is_refused(scratch_db, tmp_path, monkeypatch):
    mset = _set_in(tmp_path, monkeypatch, {"0001_t.sql": "CREATE TABLE public.edited (a int);"})
    apply_migrations(scratch_db, [mset], log=lambda _m: None)
    (tmp_path / "scratchpkg" / "migrations" / "0001_t.sql").write_text(
        "CREATE TABLE public.edited (a int, b int);"
    )
    with pytest.raises(MigrationError, match="edited after it was applied"):
        apply_migrations(scratch_db, [mset], log=lambda _m: None)
    assert {r["state"] for r in status(scratch_db, [mset])} == {"edited"}


@pytest.mark.integration
def test_a_failing_file_rolls_back_and_stops_later_files(scratch_db, tmp_path, monkeypatch):
    mset = _set_in(
        tmp_path,
        monkeypatch,
        {
            "0001_ok.sql": "CREATE TABLE public.kept (a int);",
            "0002_bad.sql": "CREATE TABLE public.half_done (a int); SELECT * FROM no_such_table;",
            "0003_never.sql": "CREATE TABLE public.never (a int);",
        },
    )
    with pytest.raises(MigrationError, match="0002_bad failed"):
        apply_migrations(scratch_db, [mset], log=lambda _m: None)
    with psycopg.connect(scratch_db) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        versions = [r[0] for r in conn.execute("SELECT version FROM platform.schema_migrations")]
    assert "kept" in tables and "half_done" not in tables and "never" not in tables
    assert versions == ["0001"]


@pytest.mark.unit
def test_badly_named_file_is_an_error(tmp_path, monkeypatch):
    mset = _set_in(tmp_path, monkeypatch, {"1_Bad Name.sql": "SELECT 1"})
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        discover(mset)


@pytest.mark.integration
def test_supabase_roles_exist_with_the_right_attributes(supabase_db):
    rows = {
        r["rolname"]: r
        for r in supabase_db.fetch_all(
            "SELECT rolname, rolbypassrls, rolcanlogin FROM pg_roles"
            " WHERE rolname IN ('anon','authenticated','service_role')"
        )
    }
    assert set(rows) == {"anon", "authenticated", "service_role"}
    assert rows["service_role"]["rolbypassrls"] and not rows["anon"]["rolbypassrls"]
    assert not any(r["rolcanlogin"] for r in rows.values())


@pytest.mark.unit
def test_the_external_source_schema_is_never_migrated_in_production():
    from resources.migrations import applicable

    names_local = [m.name for m in applicable(MIGRATION_SETS, "local")]
    names_prod = [m.name for m in applicable(MIGRATION_SETS, "production")]
    assert "gfx_source" in names_local and "gfx_source" not in names_prod
    assert [n for n in names_local if n != "gfx_source"] == names_prod


@pytest.mark.integration
def test_two_runners_at_once_apply_each_migration_once(scratch_db):
    import threading

    supabase_sets = [m for m in MIGRATION_SETS if m.target == "supabase"]
    reports, errors = [], []

    def run():
        try:
            reports.append(apply_migrations(scratch_db, supabase_sets, log=lambda _m: None))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    applied = [name for r in reports for name in r.applied]
    assert (
        len(applied) == len(set(applied)) and applied
    )  # each migration applied by exactly one runner
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT count(*) FROM platform.schema_migrations").fetchone()[0] == len(
            applied
        )
