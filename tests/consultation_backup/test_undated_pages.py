"""Pages without a 상담일자 (a NOT NULL column) fall outside every date window: the window
sync asks for them too, quarantines them with the reason and names them in the sync log."""

from __future__ import annotations

import pytest

from consultation_backup.records import sync_records
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration


def test_an_undated_page_is_quarantined_and_named(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    customer = env.page_by_title("customers", "00001")
    page = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": env.ds("consultations").id},
        properties={
            "id": {"title": [{"text": {"content": "00001_900"}}]},
            "고객": {"relation": [{"id": customer["id"]}]},
            "호소증상": {"rich_text": [{"text": {"content": "날짜 없음"}}]},
        },
    )
    start, end = window_all()
    result = sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    failure = next(f for f in result.totals.failures if f.item_id == page["id"])
    assert "상담일자" in failure.reason and failure.business_id == "00001_900"
    assert page["id"] not in result.notion_ids  # not counted in the window's parity
    quarantined = env.db.fetch_all(
        "SELECT reason FROM public.data_quarantine WHERE item_id = %s AND resolved_at IS NULL",
        (page["id"],),
    )
    assert quarantined and "상담일자" in quarantined[0]["reason"]
    assert "00001_900" in str(result.totals.log_details()["failures"])
