"""Faults (429 bursts, downtime), fallback reads, consistency, conflicts and restore."""

from __future__ import annotations

import json

import dagster as dg
from notion_client import Client

from consultation_backup import cli, restore
from consultation_backup.assets import consultation_customers
from consultation_backup.lookup import ConsultationReader
from standins import notion as notion_emu

from .conftest import make_notion
from .test_assets import SOURCES, _customer_config, _materialize


def _sync_customers(env, **cfg):
    return dg.materialize(
        [consultation_customers, *SOURCES],
        resources=env.resources(),
        run_config=_customer_config(**cfg) if cfg else None,
        raise_on_error=False,
    )


def test_429_bursts_are_retried_honouring_retry_after(backup_env):
    env = backup_env
    env.notion_injector.configure(burst_429=2, retry_after_s=1)
    assert _sync_customers(env).success
    assert env.notion_injector.injected["429"] == 2
    assert env.db.fetch_value("SELECT count(*) FROM consultation_customers") == 18


def test_notion_down_fails_clearly_and_writes_nothing(backup_env):
    env = backup_env
    env.notion_injector.configure(down=True)
    result = _sync_customers(env)
    assert not result.success
    log = env.db.fetch_one("SELECT * FROM consultation_sync_logs")
    assert log["status"] == "failed" and "notion" in log["error_message"].lower()
    assert env.db.fetch_value("SELECT count(*) FROM consultation_customers") == 0
    assert (
        env.db.fetch_value(
            "SELECT count(*) FROM platform.sync_cursors WHERE domain='consultation_backup'"
        )
        == 0
    )
    env.notion_injector.reset()
    from resources.circuit_breaker import reset_all_breakers

    reset_all_breakers()
    assert _sync_customers(env).success


def test_lookup_reads_notion_then_falls_back_to_supabase_when_notion_is_down(backup_env):
    env = backup_env
    _sync_customers(env)
    reader = ConsultationReader(
        make_notion(env.notion_url, max_attempts=1),
        env.db,
        env.settings.customers_database_id,
        env.settings.consultations_database_id,
    )
    live = reader.find_customers(customer_id="00004")
    assert (
        live.source == "notion"
        and not live.degraded
        and live.customers[0]["customer_id"] == "00004"
    )
    by_phone = reader.find_customers(phone=live.customers[0]["phone"])
    assert [c["customer_id"] for c in by_phone.customers] == ["00004"]

    env.notion_injector.configure(down=True)
    for _ in range(3):
        down = reader.find_customers(customer_id="00004")
        assert down.source == "supabase" and down.degraded and "notion" in down.reason.lower()
    assert down.customers[0]["name"] == live.customers[0]["name"]
    assert down.staleness_s is not None and down.staleness_s >= 0
    assert (
        len(down.customers[0]["consultations"]) == 0
    )  # consultations not backed up yet in this test
    before = env.notion_injector.requests
    opened = reader.find_customers(name=live.customers[0]["name"])
    assert (
        opened.source == "supabase" and "open" in opened.reason
    )  # breaker open: Notion not even called
    assert env.notion_injector.requests == before


def test_consistency_report(backup_env):
    env = backup_env
    _sync_customers(env)
    reader = ConsultationReader(
        make_notion(env.notion_url),
        env.db,
        env.settings.customers_database_id,
        env.settings.consultations_database_id,
    )
    ok = reader.validate_consistency(customer_id="00006")
    assert ok.consistent and ok.differences == []
    env.db.execute(
        "UPDATE consultation_customers SET phone = '010-0000-0000' WHERE customer_id = '00006'"
    )
    bad = reader.validate_consistency(customer_id="00006")
    assert not bad.consistent and any(d.startswith("phone:") for d in bad.differences)
    assert any("conflicts list" in r for r in bad.recommendations)
    quarantined = reader.validate_consistency(customer_id="00003")
    assert not quarantined.consistent and "invalid" in quarantined.differences[0]


def test_manual_conflicts_listed_and_resolved_by_the_cli(backup_env, capsys):
    env = backup_env
    _sync_customers(env)
    env.db.execute(
        "UPDATE consultation_customers SET address = '백업에서 고친 주소' WHERE customer_id = '00008'"
    )
    page = env.page_by_title("customers", "00008")
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=page["id"],
        properties={"주소": {"rich_text": [{"text": {"content": "노션에서 고친 주소"}}]}},
    )
    assert _sync_customers(env, conflict_strategy="manual").success
    row = env.db.fetch_one(
        "SELECT address, sync_status FROM consultation_customers WHERE customer_id = '00008'"
    )
    assert row == {"address": "백업에서 고친 주소", "sync_status": "pending"}
    assert cli.main(["conflicts", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (
        len(listed) == 1
        and listed[0]["business_id"] == "00008"
        and "address" in listed[0]["differing_fields"]
    )
    assert cli.main(["conflicts", "resolve", str(listed[0]["id"]), "--use", "notion"]) == 0
    row = env.db.fetch_one(
        "SELECT address, sync_status, updated_at > synced_at AS edited FROM consultation_customers"
        " WHERE customer_id = '00008'"
    )
    assert row == {"address": "노션에서 고친 주소", "sync_status": "synced", "edited": False}
    assert (
        cli.main(["conflicts", "resolve", str(listed[0]["id"]), "--use", "notion"]) == 2
    )  # already resolved


def test_latest_wins_keeps_a_newer_supabase_edit(backup_env):
    env = backup_env
    _sync_customers(env)
    page = env.page_by_title("customers", "00009")
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=page["id"], properties={"주소": {"rich_text": [{"text": {"content": "노션 주소"}}]}}
    )
    env.db.execute(
        "UPDATE consultation_customers SET address = '더 최근 백업 주소' WHERE customer_id = '00009'"
    )
    assert _sync_customers(env, conflict_strategy="latest_wins").success
    assert (
        env.db.fetch_value("SELECT address FROM consultation_customers WHERE customer_id='00009'")
        == "더 최근 백업 주소"
    )
    assert _sync_customers(env, conflict_strategy="notion_wins", full_refresh=True).success
    assert (
        env.db.fetch_value("SELECT address FROM consultation_customers WHERE customer_id='00009'")
        == "노션 주소"
    )


def test_unknown_conflict_strategy_is_a_clear_error(backup_env):
    result = _sync_customers(backup_env, conflict_strategy="supabase_wins")
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "conflict_strategy must be one of" in failure


def test_restore_dry_run_then_apply_is_idempotent(backup_env):
    env = backup_env
    _sync_customers(env)
    dates = env.consultation_dates()
    from consultation_backup.assets import consultation_records_and_images
    from consultation_backup.constants import RECORDS_KEY

    from .test_assets import _range_tags

    _materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[RECORDS_KEY],
        tags=_range_tags(dates[0], dates[-1]),
    )
    ws = env.workspace
    ws.add_database("db-restore-cust", "ds-restore-cust", "고객 (복구)", notion_emu.CUSTOMER_SCHEMA)
    ws.add_database(
        "db-restore-cons", "ds-restore-cons", "상담일지 (복구)", notion_emu.CONSULTATION_SCHEMA
    )
    kwargs = dict(
        customers_database_id="db-restore-cust",
        consultations_database_id="db-restore-cons",
        customer_ids=["00001", "00002"],
        relink=False,
        log=lambda m: None,
    )
    dry = restore.restore(env.notion, env.db, dry_run=True, **kwargs)
    expected = env.db.fetch_value(
        "SELECT count(*) FROM consultation_records r JOIN consultation_customers c"
        " ON c.id=r.customer_id WHERE c.customer_id IN ('00001','00002')"
    )
    assert dry.customers_created == 0 and len(dry.planned) == 2 + expected
    assert not ws.data_sources["ds-restore-cust"].pages
    done = restore.restore(env.notion, env.db, dry_run=False, **kwargs)
    assert done.customers_created == 2 and done.consultations_created == expected
    restored = {
        notion_emu.plain(p["properties"]["id"]["title"]): p
        for p in ws.data_sources["ds-restore-cust"].pages.values()
    }
    assert set(restored) == {"00001", "00002"}
    consult = next(iter(ws.data_sources["ds-restore-cons"].pages.values()))
    assert consult["properties"]["고객"]["relation"][0]["id"] in {
        p["id"] for p in restored.values()
    }
    again = restore.restore(env.notion, env.db, dry_run=False, **kwargs)
    assert again.customers_created == 0 and again.consultations_created == 0 and again.planned == []


def test_drive_429_and_notion_5xx_on_queries_are_retried(backup_env):
    from consultation_backup import sync

    from .conftest import window_all

    env = backup_env
    env.notion_injector.configure(error_rate=0.25, error_status=503, seed=3)
    sync.sync_customers(env.notion, env.db, env.settings.customers_database_id)
    start, end = window_all()
    env.drive_injector.configure(burst_429=2, retry_after_s=1)
    result, images = sync.sync_records_and_images(
        env.notion,
        env.drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        start,
        end,
    )
    assert env.notion_injector.injected["error"] > 0 and env.drive_injector.injected["429"] == 2
    assert result.outcome.synced > 0 and images.synced > 0
    assert not result.missing_in_supabase


def test_broad_lookup_is_bounded_and_reads_consultations_in_one_query(backup_env):
    """A lookup matching many customers (every phone has 010) returns at most ``limit`` customers
    and says it was truncated; their consultations come from one ``or`` query, not one query per
    customer (at 3 requests/s a per-customer loop makes a broad search take minutes). The
    fallback answers the same way, and neither side returns soft-deleted customers."""
    env = backup_env
    _sync_customers(env)
    reader = ConsultationReader(
        make_notion(env.notion_url, max_attempts=1),
        env.db,
        env.settings.customers_database_id,
        env.settings.consultations_database_id,
    )
    reader.notion.data_source_id(env.settings.customers_database_id)
    reader.notion.data_source_id(env.settings.consultations_database_id)
    before = env.workspace.stats["requests"]
    live = reader.find_customers(phone="010", limit=5)
    assert live.source == "notion" and len(live.customers) == 5 and live.truncated
    assert env.workspace.stats["requests"] - before <= 2
    related = {
        p["properties"]["고객"]["relation"][0]["id"]
        for p in env.ds("consultations").pages.values()
        if p["properties"]["고객"]["relation"] and not p["in_trash"]
    }
    with_pages = [c for c in live.customers if c["notion_page_id"] in related]
    assert with_pages and all(c["consultations"] for c in with_pages)
    everyone = reader.find_customers(phone="010", with_consultations=False)
    assert not everyone.truncated and len(everyone.customers) == 18

    victim = everyone.customers[0]
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=victim["notion_page_id"], properties={"삭제됨": {"checkbox": True}}
    )
    assert victim["customer_id"] not in {
        c["customer_id"] for c in reader.find_customers(phone="010").customers
    }

    env.notion_injector.configure(down=True)
    down = reader.find_customers(phone="010", limit=5)
    assert down.source == "supabase" and len(down.customers) == 5 and down.truncated
