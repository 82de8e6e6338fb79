"""Notion query filters and sorts: validation and evaluation against stored pages."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from standins.notion.errors import NotionError
from standins.notion.shapes import normalize_id, parse_when, plain

if TYPE_CHECKING:
    from standins.notion.state import DataSource

MAX_FILTER_DEPTH = 2
MAX_COMPOUND_FILTERS = 100

TEXT_OPS = {
    "equals",
    "does_not_equal",
    "contains",
    "does_not_contain",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
}
DATE_OPS = {"equals", "before", "after", "on_or_before", "on_or_after", "is_empty", "is_not_empty"}
NUMBER_OPS = {
    "equals",
    "does_not_equal",
    "greater_than",
    "less_than",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "is_empty",
    "is_not_empty",
}
FILTER_TYPES = {
    "title": "text",
    "rich_text": "text",
    "phone_number": "text",
    "select": "select",
    "date": "date",
    "number": "number",
    "checkbox": "checkbox",
    "relation": "relation",
    "formula": "formula",
    "files": "files",
}


def _invalid(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


# -- validation ---------------------------------------------------------------------------
def validate_filter(ds: DataSource, flt: dict[str, Any], depth: int = 0) -> None:
    """Refuse a filter Notion would refuse (400 ``validation_error``)."""
    if depth > MAX_FILTER_DEPTH:
        raise _invalid("body failed validation: filters may nest at most two levels.")
    for compound in ("and", "or"):
        if compound in flt:
            if not isinstance(flt[compound], list) or len(flt[compound]) > MAX_COMPOUND_FILTERS:
                raise _invalid(f"body failed validation: filter.{compound} must be a list.")
            for sub in flt[compound]:
                validate_filter(ds, sub, depth + 1)
            return
    if "timestamp" in flt:
        _validate_timestamp_filter(flt)
        return
    name = ds.resolve(flt.get("property"))
    if name is None:
        raise _invalid(f"Could not find property with name or id: {flt.get('property')}")
    typ = ds.schema[name]
    if typ not in flt:
        raise _invalid(
            f"body failed validation: filter for property {name!r} of type {typ} "
            f"must use key {typ!r}."
        )


def _validate_timestamp_filter(flt: dict[str, Any]) -> None:
    ts = flt["timestamp"]
    if (
        ts not in ("created_time", "last_edited_time")
        or not set(flt.get(ts, {})) <= DATE_OPS
        or not flt.get(ts)
    ):
        raise _invalid(f"body failed validation: invalid timestamp filter {flt}.")
    for op, value in flt[ts].items():
        if op not in ("is_empty", "is_not_empty"):
            try:
                parse_when(value)
            except (TypeError, ValueError) as exc:
                raise _invalid(f"body failed validation: {value!r} is not a date.") from exc


def validate_sorts(ds: DataSource, sorts: list[dict[str, Any]]) -> None:
    """Refuse a sort on a property the data source does not have."""
    for s in sorts:
        if "property" in s and ds.resolve(s["property"]) is None:
            raise _invalid(f"Could not find sort property with name or id: {s['property']}")


# -- sorting ------------------------------------------------------------------------------
def sort_key(ds: DataSource, page: dict[str, Any], sort: dict[str, Any]) -> Any:
    """The value a page is ordered by for one ``sorts`` entry."""
    if "timestamp" in sort:
        return page[sort["timestamp"]]
    value = page["properties"].get(ds.resolve(sort["property"]) or "") or {}
    typ = value.get("type")
    if typ in ("title", "rich_text"):
        return plain(value[typ])
    if typ == "date":
        return (value["date"] or {}).get("start") or ""
    if typ == "number":
        return value["number"] if value["number"] is not None else -math.inf
    return str(value.get(typ))


# -- evaluation ---------------------------------------------------------------------------
def matches(ds: DataSource, page: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether ``page`` passes a (validated) filter."""
    if "and" in flt:
        return all(matches(ds, page, f) for f in flt["and"])
    if "or" in flt:
        return any(matches(ds, page, f) for f in flt["or"])
    if "timestamp" in flt:
        ts = flt["timestamp"]
        return date_match(parse_when(page[ts]), flt[ts], datetime_mode=True)
    name = ds.resolve(flt["property"]) or ""
    typ = ds.schema[name]
    cond = flt[typ]
    value = page["properties"].get(name) or {"type": typ, typ: None}
    if ds.pid(name) in ds.dual_ids and ds.workspace:
        value = ds.workspace.full_value(ds, page, name)
    if typ == "formula":
        return _formula_match(ds, page, name, cond)
    match = _PROPERTY_MATCH.get(typ)
    return match(value, typ, cond) if match else False


def _rich_text_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    return text_match(plain(value.get(typ)), cond)


def _phone_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    return text_match(value.get(typ) or "", cond)


def _select_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    name = (value.get("select") or {}).get("name")
    if "equals" in cond:
        return name == cond["equals"]
    if "does_not_equal" in cond:
        return name != cond["does_not_equal"]
    return (name is None) == bool(cond.get("is_empty"))


def _checkbox_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    if "equals" in cond:
        return bool(value.get("checkbox")) == cond["equals"]
    return bool(value.get("checkbox")) != cond.get("does_not_equal")


def _number_prop_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    return number_match(value.get("number"), cond)


def _date_prop_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    start = (value.get("date") or {}).get("start")
    if "is_empty" in cond:
        return start is None
    if "is_not_empty" in cond:
        return start is not None
    if start is None:
        return False
    try:
        when = parse_when(start)
    except ValueError:
        return False
    return date_match(when, cond, datetime_mode=len(start) > 10)


def _relation_match(value: dict[str, Any], typ: str, cond: dict[str, Any]) -> bool:
    ids = {r["id"] for r in value.get("relation") or []}
    if "contains" in cond:
        return normalize_id(cond["contains"]) in ids
    if "does_not_contain" in cond:
        return normalize_id(cond["does_not_contain"]) not in ids
    return (not ids) == bool(cond.get("is_empty"))


def _formula_match(ds: DataSource, page: dict[str, Any], name: str, cond: dict[str, Any]) -> bool:
    rendered = (
        ds.workspace.render(ds, page)["properties"][name]["formula"].get("number")
        if ds.workspace
        else None
    )
    if "number" in cond:
        return number_match(rendered, cond["number"])
    return False


_PROPERTY_MATCH: dict[str, Callable[[dict[str, Any], str, dict[str, Any]], bool]] = {
    "title": _rich_text_match,
    "rich_text": _rich_text_match,
    "phone_number": _phone_match,
    "select": _select_match,
    "checkbox": _checkbox_match,
    "number": _number_prop_match,
    "date": _date_prop_match,
    "relation": _relation_match,
}


def text_match(text: str, cond: dict[str, Any]) -> bool:
    """A text condition (its first operator) against ``text``."""
    op, arg = next(iter(cond.items()))
    return {
        "equals": lambda: text == arg,
        "does_not_equal": lambda: text != arg,
        "contains": lambda: arg in text,
        "does_not_contain": lambda: arg not in text,
        "starts_with": lambda: text.startswith(arg),
        "ends_with": lambda: text.endswith(arg),
        "is_empty": lambda: text == "",
        "is_not_empty": lambda: text != "",
    }.get(op, lambda: False)()


def number_match(number: Any, cond: dict[str, Any]) -> bool:
    """A number condition (its first operator) against ``number`` (None is empty)."""
    op, arg = next(iter(cond.items()))
    if op == "is_empty":
        return number is None
    if op == "is_not_empty":
        return number is not None
    if number is None:
        return False
    return {
        "equals": number == arg,
        "does_not_equal": number != arg,
        "greater_than": number > arg,
        "less_than": number < arg,
        "greater_than_or_equal_to": number >= arg,
        "less_than_or_equal_to": number <= arg,
    }.get(op, False)


def date_match(when: datetime, cond: dict[str, Any], datetime_mode: bool) -> bool:
    """Every operator of a date condition against ``when`` (by day unless both have a time)."""
    for op, arg in cond.items():
        if op == "is_empty":
            return False
        if op == "is_not_empty":
            return True
        other = parse_when(arg)
        a, b = (when, other) if datetime_mode and len(arg) > 10 else (when.date(), other.date())
        ok = {
            "equals": a == b,
            "before": a < b,
            "after": a > b,
            "on_or_before": a <= b,
            "on_or_after": a >= b,
        }[op]
        if not ok:
            return False
    return True
