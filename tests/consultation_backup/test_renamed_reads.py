"""Issue 10 §2 follow-ups: a renamed 상담일자 (or any renamed property) never breaks the edits
sensor's run nor the restore; every read goes through the pinned property ids."""

from __future__ import annotations

import pytest

from consultation_backup.constants import RECORDS_KEY
from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import sensor_tick, window_all


@pytest.fixture
def synced_env(backup_env, monkeypatch):
    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("GOOGLE_DRIVE_BASE_URL", env.drive.base_url)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", env.drive.service_account_json)
    monkeypatch.setenv("SUPABASE_URL", env.storage.url)
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, *window_all())
    return env


def _run(request, instance):
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags
    )


@pytest.mark.e2e
def test_edits_after_a_renamed_consultation_date_land_with_their_partitions(
    synced_env, dagster_instance
):
    env = synced_env
    raw = env.raw_notion()
    raw.data_sources.update(
        data_source_id=notion_emu.CONSULTATIONS_DS_LOCAL,
        properties={"상담일자": {"name": "방문일"}},
    )
    _, cursor = sensor_tick(env, dagster_instance)
    rows = env.db.fetch_all(
        "SELECT notion_page_id, consultation_date FROM consultation_records"
        " WHERE NOT is_deleted ORDER BY consultation_date, notion_page_id"
    )
    by_day: dict = {}
    for r in rows:
        by_day.setdefault(r["consultation_date"], r["notion_page_id"])
    (d1, kept), (d2, moved) = list(by_day.items())[:2]
    new_day = max(by_day) if max(by_day) not in (d1, d2) else list(by_day)[2]
    raw.pages.update(
        page_id=kept,
        properties={"처방약": {"rich_text": [{"text": {"content": "이름 바뀐 날짜"}}]}},
    )
    raw.pages.update(page_id=moved, properties={"방문일": {"date": {"start": new_day.isoformat()}}})

    request, _ = sensor_tick(env, dagster_instance, cursor)
    assert request is not None and request.job_name == "consultation_edits_job"
    result = _run(request, dagster_instance)
    assert result.success

    stored = {
        r["notion_page_id"]: r
        for r in env.db.fetch_all(
            "SELECT notion_page_id, prescription, consultation_date, is_deleted"
            " FROM consultation_records WHERE notion_page_id = ANY(%s)",
            ([kept, moved],),
        )
    }
    assert stored[kept]["prescription"] == "이름 바뀐 날짜"
    assert stored[kept]["consultation_date"] == d1  # not NULLed, not quarantined
    assert stored[moved]["consultation_date"] == new_day  # the move read by property id
    assert not stored[kept]["is_deleted"] and not stored[moved]["is_deleted"]
    reported = {
        e.materialization.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == RECORDS_KEY
    }
    # the partition the moved page left changed too
    assert {d1.isoformat(), d2.isoformat(), new_day.isoformat()} <= reported
    assert not env.db.fetch_all(
        "SELECT 1 FROM public.data_quarantine WHERE item_id = ANY(%s)", ([kept, moved],)
    )


def _restore(env, **kwargs):
    from consultation_backup import restore

    return restore.restore(
        env.notion,
        env.db,
        customers_database_id=env.settings.customers_database_id,
        consultations_database_id=env.settings.consultations_database_id,
        log=lambda m: None,
        **kwargs,
    )


@pytest.mark.integration
def test_a_deleted_consultation_is_restored_after_its_properties_were_renamed(backup_env):
    """Every read of the restore goes through the pinned ids: with 고객, 상담일자 and 호소증상
    renamed, a purged consultation is recreated, its relation and date read back by id, and the
    backup row re-pointed with the right customer page (never NULL, never a crash)."""
    env = backup_env
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, *window_all())
    victim = env.db.fetch_one(
        "SELECT * FROM consultation_records WHERE NOT is_deleted ORDER BY consultation_id LIMIT 1"
    )
    cid, old_id = victim["consultation_id"], victim["notion_page_id"]
    chosen = env.db.fetch_value("SELECT clock_timestamp()")
    raw = env.raw_notion()
    raw.data_sources.update(
        data_source_id=notion_emu.CONSULTATIONS_DS_LOCAL,
        properties={
            "고객": {"name": "환자"},
            "상담일자": {"name": "방문일"},
            "호소증상": {"name": "증상"},
        },
    )
    raw.pages.update(page_id=old_id, in_trash=True)
    env.workspace.purge(old_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, *window_all())

    dry = _restore(env, as_of=chosen, consultation_ids=[cid])
    assert dry.planned == [f"consultation {cid}: create"], dry
    done = _restore(env, as_of=chosen, consultation_ids=[cid], dry_run=False)
    assert done.consultations_created == 1, done
    (page,) = [
        p
        for p in env.ds("consultations").pages.values()
        if notion_emu.plain(p["properties"]["id"]["title"]) == cid and not p["in_trash"]
    ]
    assert notion_emu.plain(page["properties"]["증상"]["rich_text"]) == victim["symptoms"]
    assert page["properties"]["방문일"]["date"]["start"][:10] == str(victim["consultation_date"])
    assert page["properties"]["환자"]["relation"][0]["id"] == victim["customer_notion_id"]
    row = env.db.fetch_one("SELECT * FROM consultation_records WHERE consultation_id=%s", (cid,))
    assert row["notion_page_id"] == page["id"] and row["is_deleted"] is False
    assert row["customer_notion_id"] == victim["customer_notion_id"]
    assert row["symptoms"] == victim["symptoms"]
    again = _restore(env, as_of=chosen, consultation_ids=[cid], dry_run=False)
    assert again.planned == [] and again.consultations_present == 1, again
