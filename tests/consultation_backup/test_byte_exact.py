"""Text is stored byte-exact: no trimming, no whitespace or Unicode normalization, rich text
chunks joined exactly as Notion returns them; U+0000 keeps the page quarantined with its
reason; phone lookups normalize at query time, not in storage."""

from __future__ import annotations

import unicodedata

import pytest

from consultation_backup import transform as T
from consultation_backup.customers import sync_customers
from consultation_backup.lookup import ConsultationReader
from consultation_backup.records import sync_records
from resources.notion import NotionPage
from tests.support.consultation import window_all

NFD_NAME = unicodedata.normalize("NFD", "  김 철수\t")  # decomposed jamo, spaces, a tab
VALUES = {
    "고객명": NFD_NAME,
    "주소": "서울시 \r\n 강남구  ",
    "특이사항": " " + "가" * 2000 + "나" * 2000 + " \u00a0끝 ",
    "customerFolderId": " folder-id ",
}


def _rich(value: str, typ: str = "rich_text") -> dict:
    chunks = [value[i : i + 2000] for i in range(0, len(value), 2000)]
    return {
        "type": typ,
        typ: [{"type": "text", "text": {"content": c}, "plain_text": c} for c in chunks],
    }


@pytest.mark.unit
def test_text_keeps_whitespace_and_joins_chunks_exactly():
    page = NotionPage(
        id="p",
        created_time="2026-11-01T00:00:00.000Z",
        last_edited_time="2026-11-01T00:00:00.000Z",
        in_trash=False,
        url=None,
        properties={
            "a": _rich(VALUES["특이사항"]),
            "b": {"type": "phone_number", "phone_number": " 010-1234-5678 "},
            "c": {"type": "select", "select": {"name": "남 "}},
        },
    )
    assert T.text(page, "a") == VALUES["특이사항"]
    assert T.text(page, "b") == " 010-1234-5678 "
    assert T.text(page, "c") == "남 "


@pytest.mark.unit
@pytest.mark.parametrize("value", ["a ", " a", "a\n", "가\u00a0"])
def test_a_whitespace_only_edit_is_a_difference(value):
    assert T.differing_fields({"x": value}, {"x": value.strip()}, ["x"]) == ["x"]


def _customer_props(values: dict[str, str], phone: str) -> dict:
    return {
        "id": {"title": [{"text": {"content": "07777"}}]},
        **{name: {"rich_text": _rich(v)["rich_text"]} for name, v in values.items()},
        "전화번호": {"phone_number": phone},
    }


@pytest.mark.integration
def test_every_value_round_trips_exactly(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    phone = " 010-7777-1234 "
    page = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": env.ds("customers").id},
        properties=_customer_props(VALUES, phone),
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    row = env.db.fetch_all(
        "SELECT * FROM public.consultation_customers WHERE notion_page_id = %s", (page["id"],)
    )[0]
    assert row["name"] == VALUES["고객명"]
    assert row["address"] == VALUES["주소"]
    assert row["special_note"] == VALUES["특이사항"]
    assert row["google_drive_folder_id"] == VALUES["customerFolderId"]
    assert row["phone"] == phone
    # an edit of trailing whitespace only is a change and is synced
    raw.pages.update(
        page_id=page["id"], properties={"주소": {"rich_text": _rich("서울시")["rich_text"]}}
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    raw.pages.update(
        page_id=page["id"], properties={"주소": {"rich_text": _rich("서울시 ")["rich_text"]}}
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    address = env.db.fetch_all(
        "SELECT address FROM public.consultation_customers WHERE notion_page_id = %s",
        (page["id"],),
    )[0]["address"]
    assert address == "서울시 "


@pytest.mark.integration
def test_a_nul_character_keeps_the_page_quarantined_with_its_reason(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    page = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": env.ds("customers").id},
        properties=_customer_props({"고객명": "이\x00름"}, "010"),
    )
    result = sync_customers(env.notion, env.db, env.settings.customers_database_id)
    assert any(f.item_id == page["id"] and "U+0000" in f.reason for f in result.totals.failures)
    open_rows = env.db.fetch_all(
        "SELECT reason FROM public.data_quarantine WHERE item_id = %s AND resolved_at IS NULL",
        (page["id"],),
    )
    assert open_rows and "U+0000" in open_rows[0]["reason"]


@pytest.mark.integration
def test_phone_lookup_normalizes_at_query_time(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": env.ds("customers").id},
        properties=_customer_props({"고객명": "전화 고객"}, "010-7777-1234"),
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    stored = env.db.fetch_all(
        "SELECT phone FROM public.consultation_customers WHERE customer_id = '07777'"
    )
    assert stored[0]["phone"] == "010-7777-1234"  # stored as Notion has it
    lookup = ConsultationReader(
        env.notion,
        env.db,
        env.settings.customers_database_id,
        env.settings.consultations_database_id,
    )
    found = lookup._from_supabase(None, None, "01077771234", False, 10)
    assert [c["customer_id"] for c in found.customers] == ["07777"]


@pytest.mark.integration
def test_consultation_text_round_trips_exactly(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    customer = env.page_by_title("customers", "00001")
    texts = {
        "호소증상": "  두통\n\n어지러움  ",
        "환자상태": unicodedata.normalize("NFD", "피로 누적 "),
        "처방약": "\t쌍화탕" + " " * 2100,
    }
    page = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": env.ds("consultations").id},
        properties={
            "id": {"title": [{"text": {"content": "00001_950"}}]},
            "상담일자": {"date": {"start": window_all()[0].isoformat()}},
            "고객": {"relation": [{"id": customer["id"]}]},
            **{name: {"rich_text": _rich(v)["rich_text"]} for name, v in texts.items()},
        },
    )
    start, end = window_all()
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    row = env.db.fetch_all(
        "SELECT symptoms, patient_condition, prescription FROM public.consultation_records"
        " WHERE notion_page_id = %s",
        (page["id"],),
    )[0]
    assert row == {
        "symptoms": texts["호소증상"],
        "patient_condition": texts["환자상태"],
        "prescription": texts["처방약"],
    }


@pytest.mark.unit
def test_an_id_with_stray_whitespace_is_invalid_not_trimmed():
    page = NotionPage(
        id="p",
        created_time="2026-11-01T00:00:00.000Z",
        last_edited_time="2026-11-01T00:00:00.000Z",
        in_trash=False,
        url=None,
        properties={"id": _rich("00001 ", "title"), "고객명": _rich("이름")},
    )
    with pytest.raises(T.InvalidPage) as err:
        T.parse_customer(page)
    assert "'00001 '" in err.value.reason
