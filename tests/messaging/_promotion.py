"""A promotion (advertising) workflow for the never-unwanted tests."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb


def promotion_workflow(
    db: Any, name: str = "전체 광고", message_config: dict[str, Any] | None = None
) -> str:
    """An advertising LMS to every customer."""
    with db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES (%s, 'promotion', 'lms', '#{name}님 이번 주 할인 안내입니다') RETURNING id",
            (name,),
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
            " message_config) VALUES (%s, 'manual', 'active', %s, %s) RETURNING id",
            (
                name,
                Jsonb({"table": "customers"}),
                Jsonb({"template_id": str(tid), **(message_config or {})}),
            ),
        ).fetchone()[0]
    return str(wid)
