"""Event targeting: which rows an event workflow's run may reach.

An event workflow declares the key it reacts to (``trigger_config = {"table", "key_column"}``);
each run covers the new keys ``(event_from, event_to]``. Its target must restrict the audience to
those keys of that table:

- a mapped-table target (``{"table": ...}``) must name the trigger table (the range is applied to
  its key field, which must be the trigger's key column);
- a SQL target must compare ``trigger table.key column`` with ``%(event_from)s`` (``>``/``>=``)
  and ``%(event_to)s`` (``<``/``<=``) in its top-level ``WHERE``, joined by ``AND`` only (never
  under ``OR``/``NOT``, never only in a ``JOIN ... ON``, where an outer join would not filter).

Anything else would send to the whole audience on every event, or apply one table's keys to
another; such a workflow is refused when the sensor loads it. Pure: sqlglot, no clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from messaging.models import TableMapping, WorkflowConfigError
from resources.errors import ReadOnlyViolation
from resources.sql_guard import check_read_only

LOWER = "event_from"
UPPER = "event_to"
_LOWER_OPS = (exp.GT, exp.GTE)
_UPPER_OPS = (exp.LT, exp.LTE)
_FLIPPED = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}


class EventTargetRefused(WorkflowConfigError):
    """An event workflow's target does not restrict the audience to the event's keys."""


@dataclass(frozen=True)
class EventTarget:
    """The key an accepted event workflow reacts to."""

    table: str
    key_column: str


def check_event_target(
    trigger_config: Mapping[str, Any],
    target_config: Mapping[str, Any],
    mappings: Mapping[str, TableMapping],
) -> EventTarget:
    """Accept an event workflow whose target binds the event's keys, or refuse it.

    Raises:
        EventTargetRefused: with the reason (shown in the sensor's skip message).
    """
    table = trigger_config.get("table")
    if not isinstance(table, str) or table not in mappings:
        raise EventTargetRefused(f"trigger_config.table {table!r} is not a mapped table")
    key = str(trigger_config.get("key_column") or mappings[table].key_field)
    if not isinstance(target_config, Mapping):
        raise EventTargetRefused("target_config must be an object")
    if target_config.get("sql"):
        _check_sql(str(target_config["sql"]), table, key)
    else:
        target_table = target_config.get("table")
        if target_table != table:
            raise EventTargetRefused(
                f"the event's keys of {table}.{key} applied to {target_table}: a table target "
                f"must be the trigger table {table}"
            )
        key_field = mappings[table].key_field
        if key_field != key:
            raise EventTargetRefused(
                f"the event's keys are {table}.{key}, but a table target filters "
                f"{table}.{key_field}; use a sql target that binds {table}.{key}"
            )
    return EventTarget(table, key)


def _check_sql(sql: str, table: str, key: str) -> None:
    try:
        stmt = check_read_only(sql)
    except ReadOnlyViolation as exc:
        raise EventTargetRefused(f"target query refused: {exc.reason}") from exc
    if not isinstance(stmt, exp.Select):
        raise EventTargetRefused(
            "target query must be one SELECT (each branch of a UNION would need the event's keys)"
        )
    found = {
        name: [p for p in stmt.find_all(exp.Placeholder) if p.name == name]
        for name in (LOWER, UPPER)
    }
    if not found[LOWER] and not found[UPPER]:
        raise EventTargetRefused(
            "target query does not bind the event's keys (%(event_from)s / %(event_to)s): it "
            "would send to the whole audience on every event"
        )
    for name, ops, bound in ((LOWER, _LOWER_OPS, "lower"), (UPPER, _UPPER_OPS, "upper")):
        if not found[name]:
            raise EventTargetRefused(
                f"target query binds no %({name})s: every event would reach all rows past "
                f"the other bound"
            )
        if not any(_binds(p, ops, stmt, table, key, bound) for p in found[name]):
            raise EventTargetRefused(  # pragma: no cover - _binds raises with the reason
                f"%({name})s does not bound {table}.{key}"
            )


def _binds(
    placeholder: exp.Placeholder,
    ops: tuple[type[exp.Expr], ...],
    stmt: exp.Expr,
    table: str,
    key: str,
    bound: str,
) -> bool:
    """The placeholder is the ``bound`` side of a comparison with ``table.key`` in the top-level
    WHERE conjunction; raises with the reason otherwise."""
    cmp = placeholder.parent
    if not isinstance(cmp, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        raise EventTargetRefused(
            f"%({placeholder.name})s must be compared with {table}.{key} (>, >=, <, <=)"
        )
    other = cmp.expression if cmp.this is placeholder else cmp.this
    op = type(cmp) if cmp.expression is placeholder else _FLIPPED[type(cmp)]
    if op not in ops:
        raise EventTargetRefused(
            f"%({placeholder.name})s must be the {bound} bound of {table}.{key}"
        )
    if not isinstance(other, exp.Column):
        raise EventTargetRefused(f"%({placeholder.name})s must be compared with a column")
    select = cmp.find_ancestor(exp.Select)
    resolved = _resolve(other, select) if select is not None else None
    if resolved is None:
        raise EventTargetRefused(
            f"qualify {other.sql('mysql')} with its table: the query reads several tables"
        )
    if resolved != (table, key):
        raise EventTargetRefused(
            f"the event's keys of {table}.{key} applied to {resolved[0]}.{resolved[1]}"
        )
    _check_conjunction(cmp, placeholder.name, stmt)
    return True


def _resolve(column: exp.Column, select: exp.Select) -> tuple[str, str] | None:
    """(table, column) of a column reference, through the SELECT's aliases."""
    sources: dict[str, str] = {}
    for tbl in select.find_all(exp.Table):
        if tbl.find_ancestor(exp.Select) is select:
            sources[(tbl.alias_or_name).lower()] = tbl.name.lower()
    qualifier = column.table.lower()
    if qualifier:
        return (sources[qualifier], column.name.lower()) if qualifier in sources else None
    names = set(sources.values())
    return (names.pop(), column.name.lower()) if len(names) == 1 else None


def _check_conjunction(cmp: exp.Expr, name: str, stmt: exp.Expr) -> None:
    """Only AND / parentheses between the comparison and the outer query's WHERE."""
    node: exp.Expr | None = cmp.parent
    while node is not None and not isinstance(node, exp.Where):
        if isinstance(node, (exp.Or, exp.Not, exp.Xor)):
            raise EventTargetRefused(
                f"%({name})s is under OR/NOT: the other branch would reach the whole audience"
            )
        if not isinstance(node, (exp.And, exp.Paren)):
            break
        node = node.parent
    if not isinstance(node, exp.Where) or node.parent is not stmt:
        raise EventTargetRefused(
            f"%({name})s must restrict the outer query's WHERE (a JOIN ... ON condition does "
            "not filter an outer join; a subquery's or CTE's WHERE is not checked)"
        )
