"""PostgreSQL types as the pgoutput stream names them: ``format_type()`` names of built-in
OIDs, and text values converted to Python by OID where a typed value is wanted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from gfx_sync.cdc.models import UNCHANGED, Relation


class DecodeError(ValueError):
    """A message could not be decoded (truncated, unknown type byte, unknown relation)."""


# Built-in type OIDs (stable across PostgreSQL versions) and their format_type() names.
TYPE_NAMES: dict[int, str] = {
    16: "boolean",
    17: "bytea",
    18: '"char"',
    19: "name",
    20: "bigint",
    21: "smallint",
    23: "integer",
    25: "text",
    26: "oid",
    114: "json",
    142: "xml",
    700: "real",
    701: "double precision",
    869: "inet",
    1000: "boolean[]",
    1005: "smallint[]",
    1007: "integer[]",
    1009: "text[]",
    1015: "character varying[]",
    1016: "bigint[]",
    1042: "character",
    1043: "character varying",
    1082: "date",
    1083: "time without time zone",
    1114: "timestamp without time zone",
    1115: "timestamp without time zone[]",
    1184: "timestamp with time zone",
    1185: "timestamp with time zone[]",
    1186: "interval",
    1266: "time with time zone",
    1700: "numeric",
    2950: "uuid",
    2951: "uuid[]",
    3802: "jsonb",
    3807: "jsonb[]",
}


def format_type_name(type_oid: int, typmod: int, custom_names: dict[int, str] | None = None) -> str:
    """The name ``format_type(oid, typmod)`` would print, for built-in types (and Type messages)."""
    base = TYPE_NAMES.get(type_oid) or (custom_names or {}).get(type_oid) or f"oid:{type_oid}"
    if typmod is None or typmod < 0:
        return base
    if type_oid in (1043, 1042):
        return f"{base}({typmod - 4})"
    if type_oid == 1700:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return f"numeric({precision},{scale})"
    if type_oid in (1114, 1184, 1083, 1266):
        head, _, tail = base.partition(" ")
        return f"{head}({typmod}) {tail}"
    return base


# -- text -> Python -------------------------------------------------------------------------


def _bool(text: str) -> bool:
    return text in ("t", "true")


def _timestamp(text: str) -> datetime | str:
    if text in ("infinity", "-infinity"):
        return text
    if text.endswith(" BC"):
        return text
    s = text
    # PostgreSQL prints offsets as +HH or +HH:MM(:SS); fromisoformat (3.11) wants +HH:MM.
    if len(s) >= 3 and s[-3] in "+-" and s[-2:].isdigit():
        s = s + ":00"
    return datetime.fromisoformat(s)


def _bytea(text: str) -> bytes:
    if text.startswith("\\x"):
        return bytes.fromhex(text[2:])
    raise DecodeError("bytea in escape format; set bytea_output=hex")


CONVERTERS: dict[int, Callable[[str], Any]] = {
    16: _bool,
    20: int,
    21: int,
    23: int,
    26: int,
    700: float,
    701: float,
    1700: Decimal,
    114: json.loads,
    3802: json.loads,
    17: _bytea,
    1082: date.fromisoformat,
    1083: time.fromisoformat,
    1114: _timestamp,
    1184: _timestamp,
    2950: uuid.UUID,
}


def to_python(text: object, type_oid: int) -> object:
    """Convert a pgoutput text value to a Python value by type OID.

    ``None`` and ``UNCHANGED`` pass through; unknown types (arrays, intervals, custom types)
    stay text. Numerics become ``Decimal`` (exact), json/jsonb parsed, bytea bytes.
    """
    if text is None or text is UNCHANGED or not isinstance(text, str):
        return text
    conv = CONVERTERS.get(type_oid)
    if conv is None:
        return text
    if type_oid == 1700 and text == "NaN":
        return Decimal("NaN")
    return conv(text)


def row_to_python(rel: Relation, row: dict[str, object]) -> dict[str, object]:
    types = {c.name: c.type_oid for c in rel.columns}
    return {k: to_python(v, types.get(k, 25)) for k, v in row.items()}
