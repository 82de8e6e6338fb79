"""The Notion stand-in follows Notion's documented behaviours that a rename-proof, complete
backup depends on: property ids surviving a rename, the 25-reference cap on page objects,
rich text kept in separate <= 2,000-character objects, Notion-hosted files with signed URLs
that expire, and the paginated page-property endpoint. Reached through notion-client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from notion_client import APIResponseError, Client

from standins import notion as notion_emu

pytestmark = pytest.mark.integration


def _raw(env) -> Client:
    return env.raw_notion(retry=False)


def _schema(raw: Client, ds_id: str) -> dict:
    return raw.data_sources.retrieve(data_source_id=ds_id)["properties"]


def test_property_id_survives_a_rename_and_pages_follow(backup_env):
    raw = _raw(backup_env)
    ds_id = notion_emu.CUSTOMERS_DS_LOCAL
    before = _schema(raw, ds_id)["고객명"]
    raw.data_sources.update(data_source_id=ds_id, properties={"고객명": {"name": "이름"}})
    after = _schema(raw, ds_id)
    assert "고객명" not in after
    assert after["이름"]["id"] == before["id"] and after["이름"]["type"] == "rich_text"
    page = raw.data_sources.query(data_source_id=ds_id, page_size=1)["results"][0]
    assert "고객명" not in page["properties"]
    assert page["properties"]["이름"]["id"] == before["id"]
    # filters take the property id in place of the name, as Notion's do
    name = "".join(t["plain_text"] for t in page["properties"]["이름"]["rich_text"])
    hits = raw.data_sources.query(
        data_source_id=ds_id, filter={"property": before["id"], "rich_text": {"equals": name}}
    )["results"]
    assert page["id"] in {p["id"] for p in hits}


def test_property_removal_and_type_change_show_in_the_schema(backup_env):
    raw = _raw(backup_env)
    ds_id = notion_emu.CUSTOMERS_DS_LOCAL
    raw.data_sources.update(
        data_source_id=ds_id,
        properties={"전화번호": None, "추정나이": {"rich_text": {}}},
    )
    schema = _schema(raw, ds_id)
    assert "전화번호" not in schema
    assert schema["추정나이"]["type"] == "rich_text"
    page = raw.data_sources.query(data_source_id=ds_id, page_size=1)["results"][0]
    assert "전화번호" not in page["properties"]
    assert page["properties"]["추정나이"]["type"] == "rich_text"


def test_a_second_data_source_can_be_added_to_a_database(backup_env):
    raw = _raw(backup_env)
    db_id = backup_env.settings.customers_database_id
    raw.data_sources.create(
        parent={"type": "database_id", "database_id": db_id},
        title=[{"type": "text", "text": {"content": "고객 2"}}],
        properties={"이름": {"title": {}}},
    )
    assert len(raw.databases.retrieve(database_id=db_id)["data_sources"]) == 2


def _customer_with_consultations(raw: Client, n: int) -> str:
    customer = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": notion_emu.CUSTOMERS_DS_LOCAL},
        properties={
            "id": {"title": [{"text": {"content": "09990"}}]},
            "고객명": {"rich_text": [{"text": {"content": "관계 많은 고객"}}]},
        },
    )
    for i in range(1, n + 1):
        raw.pages.create(
            parent={"type": "data_source_id", "data_source_id": notion_emu.CONSULTATIONS_DS_LOCAL},
            properties={
                "id": {"title": [{"text": {"content": f"09990_{i:03d}"}}]},
                "상담일자": {"date": {"start": "2026-11-20"}},
                "고객": {"relation": [{"id": customer["id"]}]},
                "호소증상": {"rich_text": [{"text": {"content": "두통"}}]},
            },
        )
    return str(customer["id"])


def test_page_objects_cap_relations_at_25_and_the_property_endpoint_pages_through_all(
    backup_env,
):
    raw = _raw(backup_env)
    customer_id = _customer_with_consultations(raw, 60)
    page = raw.pages.retrieve(page_id=customer_id)
    relation = page["properties"]["상담일지"]
    assert len(relation["relation"]) == 25 and relation["has_more"] is True
    # formulas are computed over at most 25 references
    assert page["properties"]["상담수"]["formula"]["number"] == 25
    ids, cursor, calls = [], None, 0
    while True:
        kwargs = {"start_cursor": cursor} if cursor else {}
        got = raw.pages.properties.retrieve(
            page_id=customer_id, property_id=relation["id"], page_size=25, **kwargs
        )
        calls += 1
        assert got["object"] == "list" and got["type"] == "property_item"
        ids += [item["relation"]["id"] for item in got["results"]]
        if not got["has_more"]:
            break
        cursor = got["next_cursor"]
    assert len(ids) == 60 == len(set(ids)) and calls == 3
    single = raw.pages.properties.retrieve(page_id=customer_id, property_id="title")
    assert single["object"] == "list" and single["results"][0]["title"]["plain_text"] == "09990"
    with pytest.raises(APIResponseError) as err:
        raw.pages.properties.retrieve(page_id=customer_id, property_id="nope")
    assert err.value.status == 404


def test_rich_text_objects_stay_separate_and_over_2000_characters_are_refused(backup_env):
    raw = _raw(backup_env)
    page = next(iter(backup_env.ds("customers").pages.values()))
    chunks = [" 앞 공백", "가" * 2000, "끝 공백 \t"]
    updated = raw.pages.update(
        page_id=page["id"],
        properties={"특이사항": {"rich_text": [{"text": {"content": c}} for c in chunks]}},
    )
    items = updated["properties"]["특이사항"]["rich_text"]
    assert [i["plain_text"] for i in items] == chunks
    with pytest.raises(APIResponseError) as err:
        raw.pages.update(
            page_id=page["id"],
            properties={"특이사항": {"rich_text": [{"text": {"content": "가" * 2001}}]}},
        )
    assert err.value.status == 400 and err.value.code == "validation_error"


def _upload(raw: Client, name: str, data: bytes) -> str:
    upload = raw.file_uploads.create(mode="single_part", filename=name, content_type="image/png")
    sent = raw.file_uploads.send(file_upload_id=upload["id"], file=(name, data, "image/png"))
    assert sent["status"] == "uploaded"
    return str(upload["id"])


def test_notion_hosted_files_have_signed_urls_that_expire(backup_env):
    raw = _raw(backup_env)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    upload_id = _upload(raw, "증상.png", png)
    page = next(iter(backup_env.ds("consultations").pages.values()))
    updated = raw.pages.update(
        page_id=page["id"],
        properties={
            "증상이미지": {
                "files": [
                    {"type": "file_upload", "file_upload": {"id": upload_id}, "name": "증상.png"}
                ]
            }
        },
    )
    value = updated["properties"]["증상이미지"]["files"][0]
    assert value["type"] == "file" and value["name"] == "증상.png"
    assert value["file"]["expiry_time"] and value["file"]["url"].startswith("http")
    assert httpx.get(value["file"]["url"]).content == png
    expiry = datetime.fromisoformat(value["file"]["expiry_time"].replace("Z", "+00:00"))
    assert expiry <= datetime.now(UTC) + timedelta(hours=1)
    ws = backup_env.workspace
    real_clock = ws.clock
    ws.clock = lambda: real_clock() + timedelta(hours=1, minutes=1)
    try:
        expired = httpx.get(value["file"]["url"])
    finally:
        ws.clock = real_clock
    assert expired.status_code == 403 and b"expired" in expired.content
    tampered = httpx.get(value["file"]["url"].replace("Signature=", "Signature=0"))
    assert tampered.status_code == 403


def test_filter_properties_returns_only_those_properties(backup_env):
    raw = _raw(backup_env)
    got = raw.data_sources.query(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, page_size=3, filter_properties=["title"]
    )
    assert got["results"] and all(list(p["properties"]) == ["id"] for p in got["results"])
