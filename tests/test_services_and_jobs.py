"""Local service setup says what to install when a server is missing; the migrations job runs from
Dagster; run metadata carries circuit-breaker state."""

import dagster as dg
import pytest

from resources.circuit_breaker import get_breaker
from resources.dagster_helpers import build_migrations_job, run_metadata
from resources.postgres import PostgresResource
from tooling import services
from tooling.services import MySQLAdmin, ServiceMissing


@pytest.mark.unit
def test_missing_mariadb_says_what_to_install(monkeypatch):
    monkeypatch.setattr(services, "_mariadb_binary", lambda: None)
    with pytest.raises(ServiceMissing) as info:
        services.ensure_mysql("x", "u", "p", admin=MySQLAdmin(host="127.0.0.1", port=1))
    assert "apt-get install -y mariadb-server" in str(info.value)
    assert "Traceback" not in str(info.value)


@pytest.mark.unit
def test_missing_postgres_says_what_to_install(monkeypatch):
    monkeypatch.setattr(services, "_pg_cluster", lambda: None)
    with pytest.raises(ServiceMissing, match="apt-get install -y postgresql"):
        services._pg_ctl("start")


@pytest.mark.integration
def test_postgres_settings_for_cdc_are_in_place(supabase_db):
    assert supabase_db.server_setting("wal_level") == "logical"
    assert int(supabase_db.server_setting("max_replication_slots")) >= 40


@pytest.mark.e2e
def test_migrations_job_runs_from_dagster_and_is_idempotent(test_databases):
    job = build_migrations_job("gfx_sync", ["gfx_sync", "gfx_source"])
    resources = {
        "supabase_db": PostgresResource(dsn=test_databases.supabase_url),
        "gfx_source_db": PostgresResource(dsn=test_databases.gfx_source_url),
    }
    result = job.execute_in_process(resources=resources)
    assert result.success
    totals = result.output_for_node("gfx_sync_apply_migrations")
    assert totals["applied"] == 0 and totals["already_applied"] > 0  # the session already migrated


@pytest.mark.unit
def test_run_metadata_includes_breaker_state():
    get_breaker("supabase_storage")
    meta = run_metadata(0.0, rows_written=5)
    assert meta["rows_written"] == 5 and meta["duration_s"] > 0
    assert meta["circuit/supabase_storage"] == "closed (0/3 failures)"

    @dg.asset
    def with_breaker_metadata() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=run_metadata(0.0, rows_written=1))

    result = dg.materialize([with_breaker_metadata])
    mat = result.asset_materializations_for_node("with_breaker_metadata")[0]
    assert mat.metadata["circuit/supabase_storage"].value.startswith("closed")


@pytest.mark.e2e
def test_migrations_job_in_production_leaves_the_external_source_alone(test_databases, monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "production")
    job = build_migrations_job("gfx_sync", ["gfx_sync", "gfx_source"])
    broken_source = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/unreachable", connect_attempts=1
    )
    result = job.execute_in_process(
        resources={
            "supabase_db": PostgresResource(dsn=test_databases.supabase_url),
            "gfx_source_db": broken_source,
        }
    )
    assert result.success  # the source database was never contacted
