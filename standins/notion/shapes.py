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
RICH_TEXT_ITEMS_MAX = 100
PHONE_NUMBER_MAX = 200
RELATIONS_PER_REQUEST = 100
# Page objects carry at most this many references per property (relation, people, mentions).
PAGE_REFERENCE_CAP = 25


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


def text_item(content: str, link: Any = None) -> dict[str, Any]:
    """One plain rich-text object in read shape."""
    return {
        "type": "text",
        "text": {"content": content, "link": link},
        "annotations": {
            "bold": False,
            "italic": False,
            "strikethrough": False,
            "underline": False,
            "code": False,
            "color": "default",
        },
        "plain_text": content,
        "href": (link or {}).get("url") if isinstance(link, dict) else None,
    }


def rich_text(content: str) -> list[dict[str, Any]]:
    """Plain rich-text objects in read shape, at most 2,000 characters each, as Notion stores a
    long text (empty list for an empty string)."""
    if content is None or content == "":
        return []
    return [
        text_item(content[i : i + TEXT_CONTENT_MAX])
        for i in range(0, len(content), TEXT_CONTENT_MAX)
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


def _text(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    """Rich-text objects kept as written, each one validated as Notion does (<= 2,000
    characters of content, <= 100 objects per property)."""
    if not isinstance(raw, list):
        raise _invalid(f"body.properties.{name}.{typ} should be an array.")
    if len(raw) > RICH_TEXT_ITEMS_MAX:
        raise _invalid(
            f"body.properties.{name}.{typ}.length should be ≤ {RICH_TEXT_ITEMS_MAX}, instead was"
            f" {len(raw)}."
        )
    items = []
    for n, item in enumerate(raw):
        text = item.get("text") if isinstance(item, dict) else None
        content = (text or {}).get("content")
        if not isinstance(content, str):
            raise _invalid(f"body.properties.{name}.{typ}[{n}].text.content should be a string.")
        if len(content) > TEXT_CONTENT_MAX:
            raise _invalid(
                f"body.properties.{name}.{typ}[{n}].text.content.length should be ≤"
                f" {TEXT_CONTENT_MAX}, instead was {len(content)}."
            )
        items.append(text_item(content, (text or {}).get("link")))
    return items


def _phone_number(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    if raw is not None and (not isinstance(raw, str) or len(raw) > PHONE_NUMBER_MAX):
        raise _invalid(
            f"body.properties.{name}.phone_number should be a string ≤ {PHONE_NUMBER_MAX}."
        )
    return raw


def _select(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    if raw is None:
        return None
    return {
        "id": hashlib.md5(raw["name"].encode()).hexdigest()[:4],
        "name": raw["name"],
        "color": "default",
    }


def _date(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    if raw is None:
        return None
    try:
        parse_when(raw["start"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid(
            f"body.properties.{name}.date.start should be a valid ISO 8601 date."
        ) from exc
    return {"start": raw["start"], "end": raw.get("end"), "time_zone": None}


def _number(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    if raw is not None and not isinstance(raw, int | float):
        raise _invalid(f"body.properties.{name}.number should be a number.")
    return raw


def _checkbox(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    return bool(raw)


def _files(ds: DataSource, name: str, typ: str, raw: Any) -> Any:
    """External links, uploaded files (``file_upload``) and Notion-hosted files already on the
    page (``file`` with the URL it was read with). Hosted files are stored by key; their URL is
    signed afresh on every read."""
    files = []
    for n, f in enumerate(raw):
        kind = f.get("type") or next((k for k in ("external", "file_upload", "file") if k in f), "")
        if kind == "external":
            url = f["external"]["url"]
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                # Notion validates links: an identity such as notion-file:... is no URL
                raise _invalid(f"body.properties.{name}.files[{n}].external.url should be a URL.")
            files.append(
                {"name": f.get("name") or url[-40:], "type": "external", "external": {"url": url}}
            )
        elif kind in ("file_upload", "file"):
            ref = f[kind].get("id") if kind == "file_upload" else f[kind].get("url")
            key, stored_name = ds.workspace.hosted_file(kind, ref)
            files.append(
                {"name": f.get("name") or stored_name, "type": "file", "file": {"key": key}}
            )
        else:
            raise _invalid(
                f"body.properties.{name}.files[{n}] should define external or file_upload."
            )
    return files


_READ_VALUE: dict[str, Callable[[DataSource, str, str, Any], Any]] = {
    "title": _text,
    "rich_text": _text,
    "phone_number": _phone_number,
    "select": _select,
    "date": _date,
    "number": _number,
    "checkbox": _checkbox,
    "files": _files,
}


def to_read_shape(ds: DataSource, key: str, value: Any) -> dict[str, Any]:
    """A property value as written in a request (keyed by name or id), validated and turned
    into its read shape.

    Raises:
        NotionError: 400 ``validation_error`` with Notion's message for an invalid value.
    """
    name = ds.resolve(key)
    if name is None:
        raise _invalid(f"{key} is not a property that exists.")
    typ = ds.schema[name]
    pid = ds.pid(name)
    if typ == "formula":
        raise _invalid(f"Cannot update formula property {name}.")
    if pid in ds.dual_ids:
        raise _invalid(
            f"{name} is the synced side of a two-way relation in this stand-in; edit the"
            " relation on the other data source."
        )
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
    return {"id": pid, "type": typ, typ: convert(ds, name, typ, raw)}


def write_properties(ds: DataSource, properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Written property values (keyed by name or id) in read shape, keyed by current name."""
    out = {}
    for key, value in properties.items():
        name = ds.resolve(key)
        if name is None:
            raise _invalid(f"{key} is not a property that exists.")
        out[name] = to_read_shape(ds, name, value)
    return out
