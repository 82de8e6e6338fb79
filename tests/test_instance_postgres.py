"""The production instance block documented in dagster.yaml really works: a materialization
with dagster-postgres storage lands in PostgreSQL."""

import re
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg import sql

pytestmark = pytest.mark.e2e


def documented_postgres_block() -> dict:
    """The commented `storage: postgres:` block of the repository's dagster.yaml, uncommented."""
    text = Path("dagster.yaml").read_text(encoding="utf-8")
    match = re.search(r"^# storage:\n((?:#  .*\n|#\n)+)", text, re.MULTILINE)
    assert match, "dagster.yaml documents a postgres storage block"
    body = "storage:\n" + "".join(line[2:] + "\n" for line in match.group(1).splitlines())
    return yaml.safe_load(body)


@pytest.fixture
def dagster_pg(test_databases, monkeypatch):
    info = psycopg.conninfo.conninfo_to_dict(test_databases.supabase_url)
    name = f"{test_databases.prefix}_dagster"
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", info.get("user", "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", info.get("password", ""))
    monkeypatch.setenv("DAGSTER_PG_HOST", info.get("host", "127.0.0.1"))
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    yield psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_materialization_with_postgres_instance_storage(dagster_pg, tmp_path):
    config = documented_postgres_block()
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))

    @dg.asset
    def pg_stored_asset() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 3})

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([pg_stored_asset], instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("pg_stored_asset"))
        assert event.asset_materialization.metadata["dagster/row_count"].value == 3
    with psycopg.connect(dagster_pg) as conn:
        runs = conn.execute("SELECT run_id, status FROM runs").fetchall()
    assert [(r[0], r[1]) for r in runs] == [(result.run_id, "SUCCESS")]


def test_repository_dagster_yaml_loads_as_an_instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text(Path("dagster.yaml").read_text(encoding="utf-8"))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 6
