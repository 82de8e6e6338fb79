"""Backup rows as Notion write properties (what a restore creates or overwrites pages with).
Pure: no Dagster, no clients. Rows may come from the tables or from a history version's
``row_data`` (JSON: dates as ISO strings).

Text longer than Notion's 2,000 characters per rich text object is split into several
objects, never truncated. Notion counts the length of ``text.content`` in UTF-16 code units
(JavaScript string length), so the split does too and never cuts a surrogate pair.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from consultation_backup.transform import normalize

TEXT_OBJECT_LIMIT = 2000  # text.content per rich text object
MAX_RICH_TEXT_ITEMS = 100  # rich text objects per property value


class TextTooLong(ValueError):
    """A value needs more rich text objects than Notion accepts in one property."""


def _chunks(value: str) -> list[str]:
    out: list[str] = []
    start = units = 0
    for i, ch in enumerate(value):
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > TEXT_OBJECT_LIMIT:
            out.append(value[start:i])
            start, units = i, 0
        units += width
    if start < len(value):
        out.append(value[start:])
    return out


def rich_text_objects(value: str | None) -> list[dict[str, Any]]:
    """``value`` as rich text objects of at most 2,000 UTF-16 units each, joined exactly.

    Raises:
        TextTooLong: more than 100 objects would be needed (Notion refuses the request).
    """
    if not value:
        return []
    chunks = _chunks(value)
    if len(chunks) > MAX_RICH_TEXT_ITEMS:
        raise TextTooLong(
            f"text of {len(value)} characters needs {len(chunks)} rich text objects; Notion"
            f" accepts at most {MAX_RICH_TEXT_ITEMS} per property"
        )
    return [{"type": "text", "text": {"content": c}} for c in chunks]


def _rt(value: str | None) -> dict[str, Any]:
    return {"rich_text": rich_text_objects(value)}


def _date(value: Any) -> dict[str, Any]:
    return {"date": {"start": normalize(value)[:10]} if value else None}


def customer_properties(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``consultation_customers`` row as the customer database's properties."""
    embedding = row.get("face_embedding")
    props: dict[str, Any] = {
        "id": {"title": rich_text_objects(row["customer_id"])},
        "고객명": _rt(row.get("name")),
        "전화번호": {"phone_number": row.get("phone")},
        "성별": {"select": {"name": row["gender"]} if row.get("gender") else None},
        "생년월일": _date(row.get("birth_date")),
        "추정나이": {"number": row.get("estimated_age")},
        "주소": _rt(row.get("address")),
        "특이사항": _rt(row.get("special_note")),
        "얼굴_임베딩": _rt(
            json.dumps(embedding, ensure_ascii=False) if embedding is not None else None
        ),
        "customerFolderId": _rt(row.get("google_drive_folder_id")),
        "삭제됨": {"checkbox": bool(row.get("is_deleted"))},
    }
    return props


def consultation_properties(row: Mapping[str, Any], customer_page_id: str) -> dict[str, Any]:
    """A ``consultation_records`` row as the consultation database's properties, related to
    ``customer_page_id``; image links are the Drive ones (else the backup copies)."""
    urls = list(row.get("google_drive_urls") or []) or list(row.get("supabase_image_urls") or [])
    return {
        "id": {"title": rich_text_objects(row["consultation_id"])},
        "상담일자": _date(row["consultation_date"]),
        "고객": {"relation": [{"id": customer_page_id}]},
        "호소증상": _rt(row.get("symptoms")),
        "환자상태": _rt(row.get("patient_condition")),
        "설진분석": _rt(row.get("tongue_analysis")),
        "특이사항": _rt(row.get("special_note")),
        "증상이미지": {
            "files": [
                {"name": f"image_{i}", "type": "external", "external": {"url": u}}
                for i, u in enumerate(urls[:100], start=1)
            ]
        },
        "처방약": _rt(row.get("prescription")),
        "결과": _rt(row.get("result")),
    }
