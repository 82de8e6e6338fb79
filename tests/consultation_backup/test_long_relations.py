"""Past Notion's 25-reference cap: a relation is completed with the paginated page-property
endpoint, and the formula 상담수 (computed by Notion over at most 25 relations) is never
trusted past 25: a 60-relation customer counts 60."""

from __future__ import annotations

import pytest

from consultation_backup.customers import sync_customers
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration

CUSTOMER = "09990"


def _add_customer_with(raw, n: int) -> str:
    customer = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": notion_emu.CUSTOMERS_DS_LOCAL},
        properties={
            "id": {"title": [{"text": {"content": CUSTOMER}}]},
            "고객명": {"rich_text": [{"text": {"content": "단골 고객"}}]},
        },
    )
    day = window_all()[1].isoformat()
    for i in range(1, n + 1):
        raw.pages.create(
            parent={"type": "data_source_id", "data_source_id": notion_emu.CONSULTATIONS_DS_LOCAL},
            properties={
                "id": {"title": [{"text": {"content": f"{CUSTOMER}_{i:03d}"}}]},
                "상담일자": {"date": {"start": window_all()[0].isoformat()}},
                "고객": {"relation": [{"id": customer["id"]}]},
                "호소증상": {"rich_text": [{"text": {"content": f"증상 {i} {day}"}}]},
            },
        )
    return str(customer["id"])


def _count(env) -> int:
    row = env.db.fetch_all(
        "SELECT consultation_count FROM public.consultation_customers WHERE customer_id = %s",
        (CUSTOMER,),
    )
    return int(row[0]["consultation_count"])


def test_a_60_relation_customer_counts_60(backup_env):
    env = backup_env
    _add_customer_with(env.raw_notion(retry=False), 60)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    assert _count(env) == 60


def test_without_the_relation_the_count_past_25_is_recounted_in_supabase(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    _add_customer_with(raw, 60)
    start, end = window_all()
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    # the dual relation is dropped: only the formula (25 at most) is left on the page
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties={"상담일지": None}
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id, full=True)
    assert _count(env) == 60


def test_a_new_customer_past_25_counts_its_consultations_once_they_are_backed_up(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties={"상담일지": None}
    )
    _add_customer_with(raw, 60)
    start, end = window_all()
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    assert _count(env) == 25  # Notion's formula stops at 25; nothing to recount yet
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    assert _count(env) == 60
