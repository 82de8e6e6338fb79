"""Pure logic: page parsing and rejection reasons, image sniffing, paths, conflict decisions."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from consultation_backup import transform as T
from consultation_backup.restore_properties import customer_properties
from resources.notion import NotionPage
from standins.notion import rich_text
from tooling.demo_data import DemoData

pytestmark = pytest.mark.unit


def _customer_json(**changes: Any) -> dict[str, Any]:
    props = {
        "id": {"type": "title", "title": rich_text("00042")},
        "고객명": {"type": "rich_text", "rich_text": rich_text("김민수")},
        "전화번호": {"type": "phone_number", "phone_number": "010-1234-5678"},
        "성별": {"type": "select", "select": {"name": "남"}},
        "생년월일": {"type": "date", "date": {"start": "1980-02-03"}},
        "추정나이": {"type": "number", "number": 46},
        "주소": {"type": "rich_text", "rich_text": rich_text("서울시 강남구")},
        "특이사항": {"type": "rich_text", "rich_text": []},
        "얼굴_임베딩": {"type": "rich_text", "rich_text": rich_text("[0.1, 0.2]")},
        "customerFolderId": {"type": "rich_text", "rich_text": rich_text("fld_1")},
        "상담수": {"type": "formula", "formula": {"type": "number", "number": 3}},
        "삭제됨": {"type": "checkbox", "checkbox": False},
    }
    for name, value in changes.items():
        props[name] = value
    return {
        "id": "p-1",
        "created_time": "2026-11-01T00:00:00.000Z",
        "last_edited_time": "2026-11-20T10:31:00.000Z",
        "in_trash": False,
        "properties": props,
    }


def _customer_page(**changes: Any) -> NotionPage:
    return NotionPage.from_api(_customer_json(**changes))


def _consultation_page(**changes: Any) -> NotionPage:
    props = {
        "id": {"type": "title", "title": rich_text("00042_003")},
        "상담일자": {"type": "date", "date": {"start": "2026-11-19"}},
        "고객": {"type": "relation", "relation": [{"id": "p-1"}]},
        "호소증상": {"type": "rich_text", "rich_text": rich_text("두통, 불면")},
        "증상이미지": {
            "type": "files",
            "files": [
                {
                    "name": "a.jpg",
                    "type": "external",
                    "external": {"url": "https://drive.google.com/file/d/abc_123/view"},
                }
            ],
        },
        "처방약": {"type": "rich_text", "rich_text": rich_text("쌍화탕")},
    }
    props.update(changes)
    return NotionPage.from_api(
        {
            "id": "c-1",
            "created_time": "2026-11-19T01:00:00.000Z",
            "last_edited_time": "2026-11-19T02:00:00.000Z",
            "properties": props,
        }
    )


def test_parse_customer_reads_every_property():
    row = T.parse_customer(_customer_page())
    assert (row.customer_id, row.name, row.phone, row.gender) == (
        "00042",
        "김민수",
        "010-1234-5678",
        "남",
    )
    assert (
        row.birth_date == date(1980, 2, 3)
        and row.estimated_age == 46
        and row.consultation_count == 3
    )
    assert (
        row.face_embedding == [0.1, 0.2]
        and row.google_drive_folder_id == "fld_1"
        and row.special_note is None
    )
    assert row.notion_updated_at == datetime(2026, 11, 20, 10, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"고객명": {"type": "rich_text", "rich_text": []}}, "missing name"),
        ({"성별": {"type": "select", "select": {"name": "기타"}}}, "invalid gender"),
        ({"생년월일": {"type": "date", "date": {"start": "1990-13-45"}}}, "unparseable date"),
        (
            {"얼굴_임베딩": {"type": "rich_text", "rich_text": rich_text("{oops")}},
            "invalid embedding JSON",
        ),
        ({"id": {"type": "title", "title": rich_text("42")}}, "invalid customer id"),
        ({"id": {"type": "title", "title": rich_text("０００４２")}}, "invalid customer id"),
        (
            {"얼굴_임베딩": {"type": "rich_text", "rich_text": rich_text("[0.1, NaN]")}},
            "invalid embedding JSON",
        ),
        ({"추정나이": {"type": "number", "number": 10**12}}, "invalid estimated age"),
        ({"추정나이": {"type": "number", "number": -3}}, "invalid estimated age"),
        ({"주소": {"type": "rich_text", "rich_text": rich_text("서울\x00강남")}}, "NUL character"),
    ],
)
def test_parse_customer_rejects_bad_pages_with_a_reason(changes, reason):
    with pytest.raises(T.InvalidPage) as err:
        T.parse_customer(_customer_page(**changes))
    assert reason in err.value.reason


def test_trashed_customer_is_deleted():
    page = NotionPage.from_api({**_customer_json(), "in_trash": True})
    assert T.parse_customer(page).is_deleted


def test_customer_flagged_deleted_is_deleted():
    page = _customer_page(삭제됨={"type": "checkbox", "checkbox": True})
    assert T.parse_customer(page).is_deleted


def test_parse_consultation():
    row = T.parse_consultation(_consultation_page())
    assert row.consultation_id == "00042_003" and row.customer_notion_id == "p-1"
    assert row.consultation_date == date(2026, 11, 19) and row.image_count == 1
    assert row.google_drive_urls == ["https://drive.google.com/file/d/abc_123/view"]


def test_consultation_datetime_is_taken_in_seoul():
    # 2026-11-19T20:00Z is already the 20th in Seoul (UTC+9)
    row = T.parse_consultation(
        _consultation_page(상담일자={"type": "date", "date": {"start": "2026-11-19T20:00:00Z"}})
    )
    assert row.consultation_date == date(2026, 11, 20)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"호소증상": {"type": "rich_text", "rich_text": []}}, "missing symptoms"),
        ({"고객": {"type": "relation", "relation": []}}, "broken relation"),
        ({"상담일자": {"type": "date", "date": None}}, "missing consultation date"),
        ({"상담일자": {"type": "date", "date": {"start": "2026-02-30"}}}, "unparseable date"),
        ({"id": {"type": "title", "title": rich_text("00042-3")}}, "invalid consultation id"),
        ({"id": {"type": "title", "title": rich_text("00042_００3")}}, "invalid consultation id"),
        ({"호소증상": {"type": "rich_text", "rich_text": rich_text("두\x00통")}}, "NUL character"),
    ],
)
def test_parse_consultation_rejects_bad_pages(changes, reason):
    with pytest.raises(T.InvalidPage) as err:
        T.parse_consultation(_consultation_page(**changes))
    assert reason in err.value.reason


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://drive.google.com/file/d/1AbC-_x/view?usp=sharing", "1AbC-_x"),
        ("https://drive.google.com/open?id=XYZ123", "XYZ123"),
        ("https://drive.google.com/uc?export=download&id=Q9", "Q9"),
        ("https://example.com/image.jpg", None),
    ],
)
def test_drive_file_id(url, expected):
    assert T.drive_file_id(url) == expected


@pytest.mark.parametrize(
    "fmt, mime", [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")]
)
def test_sniff_image_by_content(fmt, mime):
    assert T.sniff_image(DemoData(1).image_bytes(fmt))[0] == mime


def test_sniff_rejects_non_images():
    assert T.sniff_image("텍스트".encode()) is None
    assert T.sniff_image(b"GIF89a....") is None


def test_storage_path_layout():
    assert (
        T.storage_path("00001", "00001_002", 1, "jpg")
        == "customers/00001/consultations/00001_002/image_1.jpg"
    )


@pytest.mark.parametrize(
    "strategy, edited, differs, supa_newer, expected",
    [
        ("notion_wins", True, True, True, "apply"),
        ("latest_wins", True, True, True, "keep"),
        ("latest_wins", True, True, False, "apply"),
        ("manual", True, True, False, "conflict"),
        ("manual", False, True, True, "apply"),
        ("manual", True, False, True, "apply"),
    ],
)
def test_decide_conflict(strategy, edited, differs, supa_newer, expected):
    notion_t = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    supa_t = notion_t + timedelta(minutes=5) if supa_newer else notion_t - timedelta(hours=1)
    assert (
        T.decide_conflict(
            strategy,
            locally_edited=edited,
            differs=differs,
            notion_updated_at=notion_t,
            supabase_updated_at=supa_t,
        )
        == expected
    )


def test_decide_conflict_rejects_unknown_strategy():
    with pytest.raises(ValueError):
        T.decide_conflict(
            "supabase_wins",
            locally_edited=True,
            differs=True,
            notion_updated_at=datetime.now(UTC),
            supabase_updated_at=None,
        )


def test_watermark_start_subtracts_the_overlap():
    assert T.watermark_start("2026-11-20T10:31:00.000Z", 2) == "2026-11-20T10:29:00.000Z"
    assert T.watermark_start(None, 2) is None


def test_content_hash_changes_within_the_same_minute():
    data = _customer_json()
    edited = copy.deepcopy(data)
    edited["properties"]["주소"]["rich_text"] = rich_text("부산시")
    page, edited_page = NotionPage.from_api(data), NotionPage.from_api(edited)
    assert page.last_edited_time == edited_page.last_edited_time
    assert T.content_hash(page) != T.content_hash(edited_page)


def test_restore_properties_round_trip_through_the_parser():
    row = T.parse_customer(_customer_page()).as_dict()
    props = customer_properties(row)
    assert props["id"]["title"][0]["text"]["content"] == "00042"
    assert props["성별"] == {"select": {"name": "남"}}
    assert props["생년월일"] == {"date": {"start": "1980-02-03"}}


@pytest.mark.parametrize(
    "stored, md5, modified, expected",
    [
        (None, "m1", None, False),
        ({"drive_file_id": "f1", "drive_md5": "m1"}, "m1", None, True),
        ({"drive_file_id": "f1", "drive_md5": "m1"}, "m2", None, False),
        ({"drive_file_id": "other", "drive_md5": "m1"}, "m1", None, False),
        (
            {
                "drive_file_id": "f1",
                "drive_md5": None,
                "drive_modified_time": datetime(2026, 11, 1, tzinfo=UTC),
            },
            None,
            "2026-11-01T00:00:00.000Z",
            True,
        ),
    ],
)
def test_image_unchanged_compares_md5_then_modified_time(stored, md5, modified, expected):
    got = T.image_unchanged(stored, file_id="f1", md5=md5, modified_time=modified)
    assert got is expected, (stored, md5, modified)
