"""The read-only MySQL side: schema discovery, table mappings, keyword search,
target resolution and preview. Every query goes through ``MySQLResource`` (sqlglot guard,
read-only transaction, time limit, bound parameters)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from messaging.models import TableMapping, WorkflowConfigError
from messaging.tables import build_search_sql, build_where, parse_table_mappings, quote_ident
from messaging.transform import normalize_phone
from resources.mysql import MySQLResource

MAPPINGS_PATH = Path(__file__).parent / "data" / "table-mappings.json"


def discover_schema(mysql: MySQLResource) -> dict[str, dict[str, Any]]:
    """Tables (and views) of the operational database with their columns (type, nullability,
    key) and indexes, through ``sqlalchemy.inspect`` on the resource's pooled engine (the
    read-only guard refuses ``information_schema`` in user-written queries)."""
    insp = mysql.inspector()
    out: dict[str, dict[str, Any]] = {}
    kinds = [(t, "BASE TABLE") for t in insp.get_table_names()]
    kinds += [(v, "VIEW") for v in insp.get_view_names()]
    for table, kind in sorted(kinds):
        primary = list(insp.get_pk_constraint(table).get("constrained_columns") or [])
        indexes: dict[str, dict[str, Any]] = {}
        if primary:
            indexes["PRIMARY"] = {"unique": True, "columns": primary}
        unique_cols: set[str] = set()
        multiple_cols: set[str] = set()
        for idx in insp.get_indexes(table) if kind == "BASE TABLE" else []:
            cols = [c for c in idx["column_names"] if c]
            indexes[str(idx["name"])] = {"unique": bool(idx["unique"]), "columns": cols}
            if cols:
                (unique_cols if idx["unique"] and len(cols) == 1 else multiple_cols).add(cols[0])
        columns = []
        for col in insp.get_columns(table):
            name = str(col["name"])
            key = (
                "PRI"
                if name in primary
                else "UNI"
                if name in unique_cols
                else "MUL"
                if name in multiple_cols
                else None
            )
            column_type = str(col["type"]).lower()
            columns.append(
                {
                    "name": name,
                    "type": column_type,
                    "data_type": column_type.split("(")[0].split()[0],
                    "nullable": bool(col["nullable"]),
                    "key": key,
                }
            )
        out[table] = {"kind": kind, "approx_rows": None, "columns": columns, "indexes": indexes}
    return out


def catalog_columns(schema: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    return {t: [c["name"] for c in spec["columns"]] for t, spec in schema.items()}


def load_table_mappings(
    path: Path | str = MAPPINGS_PATH, schema: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, TableMapping]:
    """Read and validate the mappings file (against the discovered schema when given)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return parse_table_mappings(doc, catalog_columns(schema) if schema is not None else None)


def _mapping(mappings: Mapping[str, TableMapping], table: str) -> TableMapping:
    mapping = mappings.get(table)
    if mapping is None or not mapping.enabled:
        raise WorkflowConfigError(
            f"table {table!r} is not a mapped (enabled) table; mapped: {', '.join(mappings)}"
        )
    return mapping


def search(
    mysql: MySQLResource,
    mappings: Mapping[str, TableMapping],
    table: str,
    term: str | None,
    *,
    filters: list[dict[str, Any]] | None = None,
    limit: int = 20,
    offset: int = 0,
) -> dict[str, Any]:
    """Keyword search over a mapped table: rows with display names, total,
    paging."""
    mapping = _mapping(mappings, table)
    page_sql, count_sql, params = build_search_sql(
        mapping, term, filters=filters or [], limit=limit, offset=offset
    )
    total = int(mysql.scalar(count_sql, params) or 0)
    rows = mysql.query(page_sql, params)
    return {
        "table": table,
        "displayName": mapping.display_name,
        "term": term,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(rows) < total,
        "rows": rows,
        "columns": {f.name: f.display_name for f in mapping.fields.values()},
    }


@dataclass(frozen=True)
class TargetQuery:
    sql: str
    params: dict[str, Any]
    phone_column: str
    name_column: str | None
    table: str | None


def target_query(
    target_config: Mapping[str, Any],
    mappings: Mapping[str, TableMapping],
    event_range: tuple[int, int] | None = None,
    payload: Mapping[str, Any] | None = None,
    columns: list[str] | None = None,
) -> TargetQuery:
    """The SELECT a workflow's ``target_config`` means.

    Shapes: ``{"table": "customers", "filters": [...], "keyword": "..."}`` (a mapped table), or
    ``{"sql": "SELECT ...", "params": {...}, "phone_column": "phone", "name_column": "name"}``.
    Event workflows get ``%(event_from)s`` / ``%(event_to)s`` bound to the new key range; webhook
    workflows bind the payload keys named in ``params_from_payload`` (a missing one is an error).
    """
    if target_config.get("sql"):
        params = dict(target_config.get("params") or {})
        for name in target_config.get("params_from_payload") or []:
            if payload is None or payload.get(name) is None:
                raise WorkflowConfigError(
                    f"webhook payload is missing {name!r}, which the target query binds"
                )
            params[name] = payload[name]
        if event_range is not None:
            sql = str(target_config["sql"])
            if "%(event_from)s" not in sql or "%(event_to)s" not in sql:
                # messaging.targeting refuses such a workflow when the sensor loads it; a run
                # given an event range never falls back to the whole audience either
                raise WorkflowConfigError(
                    "an event run's target query must bind %(event_from)s and %(event_to)s"
                )
            params.update(event_from=event_range[0], event_to=event_range[1])
        return TargetQuery(
            str(target_config["sql"]),
            params,
            str(target_config.get("phone_column", "phone")),
            target_config.get("name_column", "name"),
            None,
        )
    table = target_config.get("table")
    if not table:
        raise WorkflowConfigError("target_config needs either 'table' or 'sql'")
    mapping = _mapping(mappings, table)
    if not mapping.phone_field:
        raise WorkflowConfigError(
            f"table {table!r} has no phoneField; use an sql target that joins one"
        )
    where, params = build_where(
        mapping, target_config.get("filters") or [], target_config.get("keyword")
    )
    if event_range is not None:
        key = f"t.{quote_ident(mapping.key_field)}"
        where += (
            " AND " if where else " WHERE "
        ) + f"{key} > %(event_from)s AND {key} <= %(event_to)s"
        params.update(event_from=event_range[0], event_to=event_range[1])
    wanted = [
        f for f in mapping.fields if columns is None or f in columns
    ]  # only what the message needs
    cols = ", ".join(f"t.{quote_ident(f)}" for f in wanted)
    order = f"t.{quote_ident(mapping.key_field)}"
    sql = f"SELECT {cols} FROM {quote_ident(table)} t{where} ORDER BY {order}"
    return TargetQuery(sql, params, mapping.phone_field, mapping.name_field, table)


def iter_targets(
    mysql: MySQLResource, query: TargetQuery, batch_size: int = 5_000
) -> Iterator[list[dict[str, Any]]]:
    yield from mysql.iter_query(query.sql, query.params or None, batch_size=batch_size)


def preview_targets(
    mysql: MySQLResource,
    target_config: Mapping[str, Any],
    mappings: Mapping[str, TableMapping],
    sample: int = 10,
) -> dict[str, Any]:
    """Target preview with counts: total rows, valid/invalid phones, duplicates,
    a sample."""
    query = target_query(target_config, mappings)
    total = valid = invalid = 0
    seen: set[str] = set()
    duplicates = 0
    rows_sample: list[dict[str, Any]] = []
    for batch in iter_targets(mysql, query):
        for row in batch:
            total += 1
            if len(rows_sample) < sample:
                rows_sample.append(row)
            try:
                phone = normalize_phone(row.get(query.phone_column))
            except Exception:  # noqa: BLE001 - any bad phone counts as invalid
                invalid += 1
                continue
            if phone in seen:
                duplicates += 1
                continue
            seen.add(phone)
            valid += 1
    return {
        "total": total,
        "sendable": valid,
        "invalid_phone": invalid,
        "duplicates": duplicates,
        "sample": rows_sample,
        "columns": list(rows_sample[0]) if rows_sample else [],
    }
