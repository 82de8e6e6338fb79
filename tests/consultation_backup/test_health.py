"""Issue 10 §4 / seed 004: a health sensor (not a run) probes Notion, Drive and Storage every
minute and records their health; long or total outages become notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from consultation_backup.definitions import defs
from consultation_backup.health import check_health, record
from resources.circuit_breaker import get_breaker
from resources.errors import TransientError

pytestmark = pytest.mark.integration


def _check(env):
    return check_health(
        env.notion, env.drive, env.storage, env.db, env.settings.customers_database_id
    )


def _health(env) -> dict[str, dict]:
    rows = env.db.fetch_all("SELECT * FROM consultation_service_health")
    return {r["service"]: r for r in rows}


@pytest.fixture
def clean_health(backup_env):
    with backup_env.db.transaction() as conn:
        conn.execute("DELETE FROM public.consultation_service_health")
        conn.execute("DELETE FROM public.notifications WHERE domain = 'consultation_backup'")
    return backup_env


def test_healthy_services_are_recorded(clean_health):
    env = clean_health
    probes, alerts = _check(env)
    assert [p.service for p in probes] == ["notion", "google_drive", "supabase_storage"]
    health = _health(env)
    assert {s: h["healthy"] for s, h in health.items()} == {
        "notion": True,
        "google_drive": True,
        "supabase_storage": True,
    }
    assert all(h["last_healthy_at"] is not None for h in health.values())
    assert alerts == []


def test_a_failing_service_counts_its_failures_from_when_it_went_down(clean_health):
    env = clean_health
    env.drive_injector.configure(down=True)
    _check(env)
    first = _health(env)["google_drive"]
    _check(env)
    second = _health(env)
    assert second["google_drive"]["healthy"] is False
    assert second["google_drive"]["consecutive_failures"] == 2
    assert second["google_drive"]["unhealthy_since"] == first["unhealthy_since"]
    assert "503" in second["google_drive"]["error"]
    assert second["notion"]["healthy"] is True
    env.drive_injector.reset()
    _check(env)
    back = _health(env)["google_drive"]
    assert back["healthy"] is True and back["consecutive_failures"] == 0
    assert back["unhealthy_since"] is None


def test_storage_without_the_service_role_key_is_unhealthy(clean_health, monkeypatch):
    env = clean_health
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    _check(env)
    storage = _health(env)["supabase_storage"]
    assert storage["healthy"] is False and "SUPABASE_SERVICE_ROLE_KEY" in storage["error"]


def test_the_probe_looks_even_when_the_breaker_is_open(clean_health):
    env = clean_health
    breaker = get_breaker("notion", env.notion.breaker_fail_max, env.notion.breaker_reset_timeout_s)
    for _ in range(breaker.fail_max):
        with pytest.raises(TransientError):
            breaker.call(lambda: (_ for _ in ()).throw(TransientError("503")))
    before = env.notion_injector.requests
    _check(env)
    assert env.notion_injector.requests == before + 1
    assert _health(env)["notion"]["healthy"] is True


def test_all_down_is_critical_once_and_a_long_outage_warns(clean_health, monkeypatch):
    env = clean_health
    env.notion_injector.configure(down=True)
    env.drive_injector.configure(down=True)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    probes, alerts = _check(env)
    assert alerts == ["critical:all"]
    _, again = _check(env)
    assert again == [], "one critical notification per outage"
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert sorted(record(env.db, probes, now=later)) == [
        "warning:google_drive",
        "warning:notion",
        "warning:supabase_storage",
    ]
    rows = env.db.fetch_all(
        "SELECT severity, type FROM public.notifications WHERE domain = 'consultation_backup'"
        " ORDER BY id"
    )
    assert [r["severity"] for r in rows] == ["critical", "warning", "warning", "warning"]


def test_the_health_sensor_records_and_launches_nothing(clean_health, dagster_instance):
    env = clean_health
    sensor = defs.get_sensor_def("consultation_health_sensor")
    assert sensor.minimum_interval_seconds == 60
    ctx = dg.build_sensor_context(instance=dagster_instance, resources=env.resources())
    result = sensor(ctx)
    assert isinstance(result, dg.SkipReason) and "notion ok" in result.skip_message
    assert set(_health(env)) == {"notion", "google_drive", "supabase_storage"}
