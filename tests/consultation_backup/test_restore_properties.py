"""Restore's write properties (pure): text longer than Notion's 2,000 characters per rich text
object is split into several objects, never truncated; the split counts UTF-16 code units as
Notion does and never cuts a surrogate pair; values round-trip byte-exact."""

from __future__ import annotations

import pytest

from consultation_backup.restore_properties import (
    MAX_RICH_TEXT_ITEMS,
    TEXT_OBJECT_LIMIT,
    TextTooLong,
    consultation_properties,
    customer_properties,
    rich_text_objects,
)

pytestmark = pytest.mark.unit


def _utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _joined(objs: list[dict]) -> str:
    return "".join(o["text"]["content"] for o in objs)


@pytest.mark.parametrize(
    "text",
    [
        "가" * 2000,
        "가" * 2001,
        "x" * 4500,
        " leading and trailing  \n",
        "😀" * 1500,  # 3,000 UTF-16 units: two objects, no pair cut in half
        "a" + "😀" * 1000,  # a pair straddles unit 2,000
    ],
)
def test_long_text_is_split_into_objects_of_at_most_2000_units_and_never_truncated(text):
    objs = rich_text_objects(text)
    assert _joined(objs) == text
    assert all(0 < _utf16(o["text"]["content"]) <= TEXT_OBJECT_LIMIT for o in objs)
    assert len(objs) == -(-_utf16(text) // TEXT_OBJECT_LIMIT) or "😀" in text


def test_empty_and_none_are_no_objects():
    assert rich_text_objects(None) == [] and rich_text_objects("") == []


def test_text_past_the_100_object_cap_is_refused_not_truncated():
    with pytest.raises(TextTooLong):
        rich_text_objects("x" * (TEXT_OBJECT_LIMIT * MAX_RICH_TEXT_ITEMS + 1))


def test_consultation_properties_split_long_symptoms():
    row = {
        "consultation_id": "00001_001",
        "consultation_date": "2026-11-01",
        "symptoms": "두통 " * 1000,
        "google_drive_urls": [],
    }
    props = consultation_properties(row, "page-1")
    objs = props["호소증상"]["rich_text"]
    assert len(objs) == 2 and _joined(objs) == row["symptoms"]  # 3,000 characters
    assert props["고객"]["relation"] == [{"id": "page-1"}]


def test_customer_properties_from_a_history_row():
    """A version's row_data (JSON: dates as strings) gives the same properties as the row."""
    row = {
        "customer_id": "00004",
        "name": "김철수",
        "phone": "010-1234-5678",
        "gender": "남",
        "birth_date": "1980-02-03",
        "estimated_age": 46,
        "address": "서울 " * 600,
        "special_note": None,
        "face_embedding": [0.1, 0.2],
        "google_drive_folder_id": "f1",
        "is_deleted": False,
    }
    props = customer_properties(row)
    assert props["생년월일"]["date"] == {"start": "1980-02-03"}
    assert _joined(props["주소"]["rich_text"]) == row["address"]
    assert props["특이사항"]["rich_text"] == []
