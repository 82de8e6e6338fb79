"""Backup rows as Notion write properties (what a restore creates pages with). Pure: no
Dagster, no clients."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from consultation_backup.transform import normalize


def _rt(value: str | None) -> dict[str, Any]:
    return {"rich_text": [{"type": "text", "text": {"content": value[:2000]}}] if value else []}


def customer_properties(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``consultation_customers`` row as the customer database's properties."""
    embedding = row.get("face_embedding")
    props: dict[str, Any] = {
        "id": {"title": [{"type": "text", "text": {"content": row["customer_id"]}}]},
        "고객명": _rt(row.get("name")),
        "전화번호": {"phone_number": row.get("phone")},
        "성별": {"select": {"name": row["gender"]} if row.get("gender") else None},
        "생년월일": {
            "date": {"start": normalize(row["birth_date"])} if row.get("birth_date") else None
        },
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
        "id": {"title": [{"type": "text", "text": {"content": row["consultation_id"]}}]},
        "상담일자": {"date": {"start": normalize(row["consultation_date"])}},
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
