"""Notion's JSON shapes: ids, timestamps, rich text, and property values written -> read."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from standins.notion.errors import NotionError

if TYPE_CHECKING:
    from standins.notion.state import DataSource

TEXT_CONTENT_MAX = 2000
PHONE_NUMBER_MAX = 200
RELATIONS_PER_REQUEST = 100


def iso(ts: datetime) -> str:
    """A timestamp as Notion writes it (UTC, milliseconds, ``Z``)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def floor_minute(ts: datetime) -> datetime:
    """Notion keeps ``created_time`` / ``last_edited_time`` to the minute."""
    return ts.replace(second=0, microsecond=0)


def parse_when(value: str) -> datetime:
    """An ISO date or datetime as an aware UTC datetime (a bare date is midnight UTC)."""
    text = value.strip()
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def rich_text(content: str) -> list[dict[str, Any]]:
    """One plain rich-text item in read shape (empty list for an empty string)."""
    if content is None or content == "":
        return []
    return [
        {
            "type": "text",
            "text": {"content": content, "link": None},
            "annotations": {
                "bold": False,
                "italic": False,
                "strikethrough": False,
                "underline": False,
                "code": False,
                "color": "default",
            },
            "plain_text": content,
            "href": None,
        }
    ]


def plain(items: list[dict[str, Any]] | None) -> str:
    """The plain text of rich-text items."""
    return "".join(i.get("plain_text") or i.get("text", {}).get("content", "") for i in items or [])


def normalize_id(value: str) -> str:
    """A Notion id with or without dashes as the dashed UUID (other strings unchanged)."""
    text = value.replace("-", "")
    if len(text) == 32:
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return value
    return value


def prop_id(name: str) -> str:
    """A stable short property id (the title property's id is ``title``, as in Notion)."""
    return "title" if name == "id" else hashlib.md5(name.encode()).hexdigest()[:4]


def _invalid(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def _text(name: str, typ: str, raw: Any) -> Any:
    if not isinstance(raw, list):
        raise _invalid(f"body.properties.{name}.{typ} should be an array.")
    text = "".join((item.get("text") or {}).get("content", "") for item in raw)
    if any(len((item.get("text") or {}).get("content", "")) > TEXT_CONTENT_MAX for item in raw):
        raise _invalid(
            f"body.properties.{name}.{typ}[0].text.content.length should be ≤ {TEXT_CONTENT_MAX}."
        )
    return rich_text(text)


def _phone_number(name: str, typ: str, raw: Any) -> Any:
    if raw is not None and (not isinstance(raw, str) or len(raw) > PHONE_NUMBER_MAX):
        raise _invalid(
            f"body.properties.{name}.phone_number should be a string ≤ {PHONE_NUMBER_MAX}."
        )
    return raw


def _select(name: str, typ: str, raw: Any) -> Any:
    if raw is None:
        return None
    return {
        "id": hashlib.md5(raw["name"].encode()).hexdigest()[:4],
        "name": raw["name"],
        "color": "default",
    }


def _date(name: str, typ: str, raw: Any) -> Any:
    if raw is None:
        return None
    try:
        parse_when(raw["start"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid(
            f"body.properties.{name}.date.start should be a valid ISO 8601 date."
        ) from exc
    return {"start": raw["start"], "end": raw.get("end"), "time_zone": None}


def _number(name: str, typ: str, raw: Any) -> Any:
    if raw is not None and not isinstance(raw, int | float):
        raise _invalid(f"body.properties.{name}.number should be a number.")
    return raw


def _checkbox(name: str, typ: str, raw: Any) -> Any:
    return bool(raw)


def _files(name: str, typ: str, raw: Any) -> Any:
    files = []
    for f in raw:
        if "external" not in f:
            raise _invalid("only external files can be set by this stand-in.")
        files.append(
            {
                "name": f.get("name") or f["external"]["url"][-40:],
                "type": "external",
                "external": {"url": f["external"]["url"]},
            }
        )
    return files


_READ_VALUE: dict[str, Callable[[str, str, Any], Any]] = {
    "title": _text,
    "rich_text": _text,
    "phone_number": _phone_number,
    "select": _select,
    "date": _date,
    "number": _number,
    "checkbox": _checkbox,
    "files": _files,
}


def to_read_shape(ds: DataSource, name: str, value: Any) -> dict[str, Any]:
    """A property value as written in a request, validated and turned into its read shape.

    Raises:
        NotionError: 400 ``validation_error`` with Notion's message for an invalid value.
    """
    if name not in ds.schema:
        raise _invalid(f"{name} is not a property that exists.")
    typ = ds.schema[name]
    pid = prop_id(name)
    if typ == "formula":
        raise _invalid(f"Cannot update formula property {name}.")
    if not isinstance(value, dict) or typ not in value:
        raise _invalid(
            f"body failed validation: body.properties.{name}.{typ} should be defined, "
            "instead was `undefined`."
        )
    raw = value[typ]
    if typ == "relation":
        if len(raw) > RELATIONS_PER_REQUEST:
            raise _invalid("relations are limited to 100 pages per request.")
        relation = [{"id": normalize_id(r["id"])} for r in raw]
        return {"id": pid, "type": typ, typ: relation, "has_more": False}
    convert = _READ_VALUE.get(typ)
    if convert is None:
        raise _invalid(f"unsupported property type {typ}")
    return {"id": pid, "type": typ, typ: convert(name, typ, raw)}
