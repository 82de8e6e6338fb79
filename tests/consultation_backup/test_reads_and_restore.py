"""Fallback reads, the consistency report, restore into Notion, and retries of the syncs,
through the domain functions against the stand-ins and the test database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consultation_backup import restore
from consultation_backup.customers import sync_customers
from consultation_backup.lookup import ConsultationReader
from consultation_backup.pipeline import sync_records_and_images
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import BackupEnv, make_notion, window_all

pytestmark = pytest.mark.integration


def _backup_customers(env: BackupEnv) -> None:
    sync_customers(env.notion, env.db, env.settings.customers_database_id)


def _reader(env: BackupEnv, **notion_overrides) -> ConsultationReader:
    return ConsultationReader(
        make_notion(env.notion_url, **notion_overrides),
        env.db,
        env.settings.customers_database_id,
        env.settings.consultations_database_id,
    )


def test_lookup_reads_notion_then_falls_back_to_supabase_when_notion_is_down(backup_env):
    env = backup_env
    _backup_customers(env)
    reader = _reader(env, max_attempts=1)
    live = reader.find_customers(customer_id="00004")
    assert live.source == "notion" and not live.degraded
    assert live.customers[0]["customer_id"] == "00004"
    by_phone = reader.find_customers(phone=live.customers[0]["phone"])
    assert [c["customer_id"] for c in by_phone.customers] == ["00004"]

    env.notion_injector.configure(down=True)
    for _ in range(3):
        down = reader.find_customers(customer_id="00004")
        assert down.source == "supabase" and down.degraded, down
        assert "notion" in (down.reason or "").lower(), down.reason
    assert down.customers[0]["name"] == live.customers[0]["name"]
    assert down.staleness_s is not None and down.staleness_s >= 0
    # consultations not backed up yet in this test
    assert len(down.customers[0]["consultations"]) == 0
    before = env.notion_injector.requests
    opened = reader.find_customers(name=live.customers[0]["name"])
    assert opened.source == "supabase" and "open" in (opened.reason or ""), opened.reason
    assert env.notion_injector.requests == before, "breaker open: Notion not even called"


def test_consistency_report_of_a_consistent_customer(backup_env):
    _backup_customers(backup_env)
    ok = _reader(backup_env).validate_consistency(customer_id="00006")
    assert ok.consistent and ok.differences == []


def test_consistency_report_names_a_field_edited_in_the_backup(backup_env):
    env = backup_env
    _backup_customers(env)
    env.db.execute(
        "UPDATE consultation_customers SET phone = '010-0000-0000' WHERE customer_id = '00006'"
    )
    bad = _reader(env).validate_consistency(customer_id="00006")
    assert not bad.consistent
    assert any(d.startswith("phone:") for d in bad.differences), bad.differences
    assert any("conflicts list" in r for r in bad.recommendations), bad.recommendations


def test_consistency_report_of_an_invalid_notion_page(backup_env):
    _backup_customers(backup_env)
    quarantined = _reader(backup_env).validate_consistency(customer_id="00003")
    assert not quarantined.consistent and "invalid" in quarantined.differences[0]


def test_restore_dry_run_then_apply_is_idempotent(backup_env):
    env = backup_env
    _backup_customers(env)
    dates = env.consultation_dates()
    sync_records(
        env.notion,
        env.db,
        env.settings.consultations_database_id,
        dates[0],
        dates[-1] + timedelta(days=1),
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
    assert dry.customers_created == 0 and len(dry.planned) == 2 + expected, dry.planned
    assert not ws.data_sources["ds-restore-cust"].pages, "a dry run creates nothing"
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
    }, "restored consultations point at the restored customers"
    again = restore.restore(env.notion, env.db, dry_run=False, **kwargs)
    assert again.customers_created == 0 and again.consultations_created == 0
    assert again.planned == []


def test_drive_429_and_notion_5xx_on_queries_are_retried(backup_env):
    env = backup_env
    env.notion_injector.configure(error_rate=0.25, error_status=503, seed=3)
    _backup_customers(env)
    start, end = window_all()
    env.drive_injector.configure(burst_429=2, retry_after_s=1)
    both = sync_records_and_images(
        env.notion,
        env.drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        start,
        end,
    )
    assert env.notion_injector.injected["error"] > 0, "the fault injector answered some 503s"
    assert env.drive_injector.injected["429"] == 2
    assert both.records.totals.synced > 0 and both.images.totals.synced > 0
    assert not both.records.missing_in_supabase


def test_broad_lookup_is_bounded_and_reads_consultations_in_one_query(backup_env):
    """A lookup matching many customers (every phone has 010) returns at most ``limit``
    customers and says it was truncated; their consultations come from one ``or`` query, not
    one query per customer (at 3 requests/s a per-customer loop makes a broad search take
    minutes). The fallback answers the same way, and neither side returns soft-deleted
    customers."""
    env = backup_env
    _backup_customers(env)
    reader = _reader(env, max_attempts=1)
    reader.notion.data_source_id(env.settings.customers_database_id)
    reader.notion.data_source_id(env.settings.consultations_database_id)
    before = env.workspace.stats["requests"]
    live = reader.find_customers(phone="010", limit=5)
    assert live.source == "notion" and len(live.customers) == 5 and live.truncated
    assert env.workspace.stats["requests"] - before <= 2, "one query each for both databases"
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
    env.raw_notion().pages.update(
        page_id=victim["notion_page_id"], properties={"삭제됨": {"checkbox": True}}
    )
    assert victim["customer_id"] not in {
        c["customer_id"] for c in reader.find_customers(phone="010").customers
    }

    env.notion_injector.configure(down=True)
    down = reader.find_customers(phone="010", limit=5)
    assert down.source == "supabase" and len(down.customers) == 5 and down.truncated
