"""Table mappings (``data/table-mappings.json``) and the SQL built from them: filters,
keyword search, identifiers. Pure: no Dagster, no clients; values are always bound."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from messaging.models import FieldMapping, TableMapping, TableMappingError, WorkflowConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FIELD_TYPES = ("string", "number", "date", "datetime", "boolean")


def parse_table_mappings(
    doc: Mapping[str, Any], catalog: Mapping[str, Sequence[str]] | None = None
) -> dict[str, TableMapping]:
    """Validate ``data/table-mappings.json`` and return the mappings.

    Args:
        catalog: table -> column names actually in MySQL; when given, every mapped table and
            field must exist there.

    Raises:
        TableMappingError: listing every problem found (not just the first).
    """
    problems: list[str] = []
    out: dict[str, TableMapping] = {}
    if not isinstance(doc, Mapping) or not doc:
        raise TableMappingError("table mappings must be a non-empty JSON object of tables")
    for table, spec in doc.items():
        mapping = _parse_table(table, spec, catalog, problems)
        if mapping is not None:
            out[table] = mapping
    if problems:
        raise TableMappingError("invalid table mappings: " + "; ".join(problems))
    return out


def _parse_table(
    table: str,
    spec: Any,
    catalog: Mapping[str, Sequence[str]] | None,
    problems: list[str],
) -> TableMapping | None:
    """One table's mapping; its problems are appended (None when it cannot be read at all)."""
    if not IDENTIFIER.match(table):
        problems.append(f"{table}: not a valid table name")
        return None
    if not isinstance(spec, Mapping):
        problems.append(f"{table}: expected an object")
        return None
    if not str(spec.get("displayName") or "").strip():
        problems.append(f"{table}: displayName is required")
    fields = spec.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        problems.append(f"{table}: fields must be a non-empty object")
        return None
    columns = None if catalog is None else catalog.get(table)
    parsed: dict[str, FieldMapping] = {}
    for fname, f in fields.items():
        field = _parse_field(f"{table}.{fname}", fname, f, columns, problems)
        if field is not None:
            parsed[fname] = field
    if catalog is not None and table not in catalog:
        problems.append(f"{table}: no such table in MySQL")
    for role in ("keyField", "phoneField", "nameField", "changeColumn"):
        col = spec.get(role)
        if col is not None and col not in parsed:
            problems.append(f"{table}: {role} {col!r} is not one of its fields")
    return TableMapping(
        table,
        str(spec.get("displayName") or ""),
        str(spec.get("description") or ""),
        parsed,
        spec.get("keyField", "id"),
        spec.get("phoneField"),
        spec.get("nameField"),
        spec.get("changeColumn"),
        bool(spec.get("enabled", True)),
    )


def _parse_field(
    where: str,
    name: str,
    f: Any,
    columns: Sequence[str] | None,
    problems: list[str],
) -> FieldMapping | None:
    if not IDENTIFIER.match(name):
        problems.append(f"{where}: not a valid column name")
        return None
    if not isinstance(f, Mapping):
        problems.append(f"{where}: expected an object")
        return None
    if not str(f.get("displayName") or "").strip():
        problems.append(f"{where}: displayName is required")
    if f.get("type") not in FIELD_TYPES:
        problems.append(
            f"{where}: type must be one of {', '.join(FIELD_TYPES)} (got {f.get('type')!r})"
        )
    if "filterable" in f and not isinstance(f["filterable"], bool):
        problems.append(f"{where}: filterable must be true or false")
    if columns is not None and name not in columns:
        problems.append(f"{where}: no such column in MySQL")
    return FieldMapping(
        name,
        str(f.get("displayName") or ""),
        str(f.get("type")),
        bool(f.get("filterable", False)),
        bool(f.get("searchable", False)),
    )


def escape_like(term: str) -> str:
    """Escape LIKE wildcards so a search term matches literally (escape character ``\\``)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def quote_ident(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise WorkflowConfigError(f"not a valid identifier: {name!r}")
    return f"`{name}`"


OPERATORS = {
    "=": "=",
    "!=": "<>",
    "<>": "<>",
    ">": ">",
    ">=": ">=",
    "<": "<",
    "<=": "<=",
    "in": "IN",
    "like": "LIKE",
    "contains": "LIKE",
    "is_null": "IS NULL",
    "not_null": "IS NOT NULL",
}


def build_where(
    mapping: TableMapping,
    filters: Sequence[Mapping[str, Any]] = (),
    term: str | None = None,
    alias: str = "t",
) -> tuple[str, dict[str, Any]]:
    """WHERE clause from filters on filterable fields and a keyword over searchable fields (bound
    params)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for i, flt in enumerate(filters):
        field = flt.get("field")
        if field not in mapping.fields:
            raise WorkflowConfigError(f"{mapping.table}: unknown field {field!r} in filter")
        if not mapping.fields[field].filterable:
            raise WorkflowConfigError(f"{mapping.table}.{field} is not filterable")
        op = str(flt.get("op", "=")).lower()
        if op not in OPERATORS:
            raise WorkflowConfigError(f"unknown filter operator {op!r}")
        col = f"{alias}.{quote_ident(field)}"
        if op in ("is_null", "not_null"):
            clauses.append(f"{col} {OPERATORS[op]}")
        elif op == "in":
            values = list(flt.get("value") or [])
            if not values:
                clauses.append("1 = 0")
                continue
            names = []
            for j, v in enumerate(values):
                params[f"f{i}_{j}"] = v
                names.append(f"%(f{i}_{j})s")
            clauses.append(f"{col} IN ({', '.join(names)})")
        elif op == "contains":
            params[f"f{i}"] = f"%{escape_like(str(flt.get('value', '')))}%"
            clauses.append(f"{col} LIKE %(f{i})s ESCAPE '\\\\'")
        else:
            params[f"f{i}"] = flt.get("value")
            clauses.append(f"{col} {OPERATORS[op]} %(f{i})s")
    if term:
        fields = mapping.searchable_fields
        if not fields:
            raise WorkflowConfigError(f"{mapping.table} has no searchable fields")
        params["term"] = f"%{escape_like(term)}%"
        clauses.append(
            "("
            + " OR ".join(f"{alias}.{quote_ident(f)} LIKE %(term)s ESCAPE '\\\\'" for f in fields)
            + ")"
        )
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def build_search_sql(
    mapping: TableMapping,
    term: str | None,
    *,
    filters: Sequence[Mapping[str, Any]] = (),
    limit: int = 20,
    offset: int = 0,
) -> tuple[str, str, dict[str, Any]]:
    """(page SQL, count SQL, params) for a keyword search over a mapped table, paginated."""
    if not 1 <= int(limit) <= 1000:
        raise WorkflowConfigError("limit must be between 1 and 1000")
    if int(offset) < 0:
        raise WorkflowConfigError("offset must be >= 0")
    where, params = build_where(mapping, filters, term)
    cols = ", ".join(f"t.{quote_ident(f)}" for f in mapping.fields)
    table = quote_ident(mapping.table)
    order = f"t.{quote_ident(mapping.key_field)}"
    page = (
        f"SELECT {cols} FROM {table} t{where} ORDER BY {order}"
        f" LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    count = f"SELECT COUNT(*) AS n FROM {table} t{where}"
    return page, count, params
