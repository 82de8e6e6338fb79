"""Reads that survive Notion schema changes: properties are read by their stable id, a rename
keeps syncing, and a removed property, a changed type or a second data source stops the run
before any write with a named error and a notification, leaving the backup untouched."""

from __future__ import annotations

import pytest
from notion_client import Client

from consultation_backup.customers import sync_customers
from consultation_backup.notion_schema import NotionSchemaChanged
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration


def _raw(env) -> Client:
    return env.raw_notion(retry=False)


def _backup(env) -> dict[str, dict]:
    rows = env.db.fetch_all("SELECT * FROM public.consultation_customers")
    return {r["notion_page_id"]: r for r in rows}


def _valid_customer(env) -> dict:
    return next(
        p
        for p in env.ds("customers").pages.values()
        if notion_emu.plain(p["properties"]["id"]["title"]) == "00001"
    )


def _set_text(raw: Client, page_id: str, name: str, value: str) -> None:
    raw.pages.update(
        page_id=page_id, properties={name: {"rich_text": [{"text": {"content": value}}]}}
    )


def _notifications(env, about: str) -> list[dict]:
    return env.db.fetch_all(
        "SELECT type, severity, title, message, metadata FROM public.notifications"
        " WHERE domain = 'consultation_backup' AND type = 'notion_schema_changed'"
        " AND message LIKE %s",
        (f"%{about}%",),
    )


def _sync(env, **kwargs):
    return sync_customers(env.notion, env.db, env.settings.customers_database_id, **kwargs)


def test_renamed_properties_keep_syncing(backup_env):
    env = backup_env
    raw = _raw(env)
    first = _sync(env)
    page = _valid_customer(env)
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL,
        properties={"고객명": {"name": "이름"}, "전화번호": {"name": "연락처"}},
    )
    _set_text(raw, page["id"], "이름", "새 이름")
    result = _sync(env, full=True)
    assert result.totals.failed == first.totals.failed
    row = _backup(env)[page["id"]]
    assert row["name"] == "새 이름"
    assert row["phone"] is not None  # read through the renamed 연락처, not NULLed
    names = env.db.fetch_all(
        "SELECT canonical_name, current_name FROM public.consultation_notion_properties"
        " WHERE canonical_name IN ('고객명', '전화번호')"
    )
    assert {r["canonical_name"]: r["current_name"] for r in names} == {
        "고객명": "이름",
        "전화번호": "연락처",
    }


def test_renamed_date_property_keeps_the_window_query_working(backup_env):
    env = backup_env
    raw = _raw(env)
    _sync(env)
    start, end = window_all()
    db_id = env.settings.consultations_database_id
    first = sync_records(env.notion, env.db, db_id, start, end)
    raw.data_sources.update(
        data_source_id=notion_emu.CONSULTATIONS_DS_LOCAL,
        properties={"상담일자": {"name": "상담 날짜"}, "호소증상": {"name": "증상"}},
    )
    page = env.page_by_title("consultations", "00001_001")
    _set_text(raw, page["id"], "증상", "바뀐 증상")
    result = sync_records(env.notion, env.db, db_id, start, end)
    assert result.notion_ids == first.notion_ids  # the window query still finds every page
    assert result.soft_deleted == 0
    row = env.db.fetch_all(
        "SELECT symptoms FROM public.consultation_records WHERE notion_page_id = %s",
        (page["id"],),
    )
    assert row[0]["symptoms"] == "바뀐 증상"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"전화번호": None}, "전화번호"),
        ({"추정나이": {"rich_text": {}}}, "추정나이"),
    ],
    ids=["removed", "retyped"],
)
def test_removed_or_retyped_property_fails_before_any_write(backup_env, change, expected):
    env = backup_env
    raw = _raw(env)
    _sync(env)
    before = _backup(env)
    page = _valid_customer(env)
    raw.data_sources.update(data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties=change)
    _set_text(raw, page["id"], "고객명", "바뀐 이름")
    with pytest.raises(NotionSchemaChanged) as err:
        _sync(env, full=True)
    assert expected in str(err.value)
    assert ("removed" if "removed" in str(err.value) else "type") in str(err.value)
    after = _backup(env)
    assert {k: (v["name"], v["phone"], v["estimated_age"]) for k, v in after.items()} == {
        k: (v["name"], v["phone"], v["estimated_age"]) for k, v in before.items()
    }
    notes = _notifications(env, expected)
    assert len(notes) == 1 and notes[0]["severity"] == "error"
    assert expected in notes[0]["message"]


def test_a_second_data_source_fails_the_run(backup_env):
    env = backup_env
    raw = _raw(env)
    raw.data_sources.create(
        parent={"type": "database_id", "database_id": env.settings.customers_database_id},
        title=[{"type": "text", "text": {"content": "고객 (사본)"}}],
        properties={"id": {"title": {}}},
    )
    with pytest.raises(NotionSchemaChanged) as err:
        _sync(env)
    assert "data source" in str(err.value)
    assert _backup(env) == {}
    assert len(_notifications(env, "data sources")) == 1


@pytest.mark.parametrize(
    "change", [{"상담일자": None}, {"상담일자": {"rich_text": {}}}], ids=["removed", "retyped"]
)
def test_a_changed_date_property_stops_the_window_sync_with_the_named_error(backup_env, change):
    env = backup_env
    _sync(env)
    start, end = window_all()
    db_id = env.settings.consultations_database_id
    sync_records(env.notion, env.db, db_id, start, end)
    before = env.db.fetch_all(
        "SELECT notion_page_id, consultation_date, is_deleted FROM public.consultation_records"
    )
    _raw(env).data_sources.update(
        data_source_id=notion_emu.CONSULTATIONS_DS_LOCAL, properties=change
    )
    with pytest.raises(NotionSchemaChanged) as err:
        sync_records(env.notion, env.db, db_id, start, end)
    assert "상담일자" in str(err.value)
    after = env.db.fetch_all(
        "SELECT notion_page_id, consultation_date, is_deleted FROM public.consultation_records"
    )
    assert sorted(after, key=str) == sorted(before, key=str)
