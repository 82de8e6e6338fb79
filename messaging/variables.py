"""Where template variables get their values: workflow ``variables``, individual mappings,
built-in functions, and matching template variables to sources. Pure: no Dagster, no clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from messaging import constants as C
from messaging.models import MatchReport, VariableSource, WorkflowConfigError
from messaging.transform import format_value, normalize_phone

QueryLookup = Callable[[VariableSource, Mapping[str, Any]], Any]


def _as_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _evaluate_function(
    function: str, argument: str | None, row: Mapping[str, Any], now: datetime
) -> str | None:
    """Built-in ``function`` variables: dates, times and formatting.

    ``today`` / ``now`` / ``time`` / ``weekday``; ``date_plus_days`` (argument: days);
    ``format_date`` / ``format_number`` / ``format_phone`` / ``days_until`` (argument: a column).
    Returns None when the input column is empty (the variable then counts as unresolved).
    """
    local = now.astimezone(C.SEOUL)
    if function == "today":
        return local.strftime("%Y-%m-%d")
    if function == "now":
        return local.strftime("%Y-%m-%d %H:%M")
    if function == "time":
        return local.strftime("%H:%M")
    if function == "weekday":
        return "월화수목금토일"[local.weekday()] + "요일"
    if function == "date_plus_days":
        return (local.date() + timedelta(days=int(argument or 0))).strftime("%Y-%m-%d")
    value = row.get(argument or "")
    if value is None:
        return None
    if function == "format_date":
        d = _as_date(value)
        return None if d is None else f"{d.year}년 {d.month}월 {d.day}일"
    if function == "format_number":
        return f"{int(Decimal(str(value))):,}"
    if function == "format_phone":
        digits = normalize_phone(value)
        return f"{digits[:3]}-{digits[3:-4]}-{digits[-4:]}"
    if function == "days_until":
        d = _as_date(value)
        return None if d is None else str((d - local.date()).days)
    raise WorkflowConfigError(f"unknown function variable {function!r}")


def evaluate_function(
    function: str, argument: str | None, row: Mapping[str, Any], now: datetime
) -> str | None:
    """See ``_evaluate_function``; row-independent functions are computed once per ``now``."""
    if function in _ROW_INDEPENDENT:
        return _constant_function(function, argument, now)
    return _evaluate_function(function, argument, row, now)


_ROW_INDEPENDENT = frozenset({"today", "now", "time", "weekday", "date_plus_days"})


@lru_cache(maxsize=64)
def _constant_function(function: str, argument: str | None, now: datetime) -> str | None:
    """Functions that do not read the row are computed once per run (``now`` is fixed per run)."""
    return _evaluate_function(function, argument, {}, now)


FUNCTIONS = (
    "today",
    "now",
    "time",
    "weekday",
    "date_plus_days",
    "format_date",
    "format_number",
    "format_phone",
    "days_until",
)


def parse_variable_sources(variables: Mapping[str, Any]) -> dict[str, VariableSource]:
    """Workflow ``variables`` JSON -> sources. A bare string means a target column.

    Shapes: ``"col"``, ``{"type": "column", "column": "col"}``, ``{"type": "static", "value":
    "..."}``,
    ``{"type": "query", "template": "<variable_query_templates.template_name>", "params": {"p":
    "col"},
    "column": "result_col"}``, ``{"type": "function", "function": "today", "argument": "..."}``.
    """
    out: dict[str, VariableSource] = {}
    for name, spec in (variables or {}).items():
        if isinstance(spec, str):
            out[name] = VariableSource(name, "column", column=spec)
            continue
        if not isinstance(spec, Mapping):
            raise WorkflowConfigError(
                f"variable {name!r}: expected a column name or an object, got {spec!r}"
            )
        kind = spec.get("type") or spec.get("source_type")
        default = spec.get("default")
        if kind == "column":
            out[name] = VariableSource(name, "column", column=spec["column"], default=default)
        elif kind == "static":
            out[name] = VariableSource(
                name, "static", value=str(spec.get("value", "")), default=default
            )
        elif kind == "query":
            if not spec.get("template"):
                raise WorkflowConfigError(
                    f"variable {name!r}: a query variable names its query template"
                )
            out[name] = VariableSource(
                name,
                "query",
                column=spec.get("column"),
                query_template=spec["template"],
                params=dict(spec.get("params") or {}),
                default=default,
            )
        elif kind == "function":
            if spec.get("function") not in FUNCTIONS:
                raise WorkflowConfigError(
                    f"variable {name!r}: unknown function {spec.get('function')!r}"
                )
            out[name] = VariableSource(
                name,
                "function",
                function=spec["function"],
                argument=spec.get("argument"),
                default=default,
            )
        else:
            raise WorkflowConfigError(f"variable {name!r}: unknown type {kind!r}")
    return out


INLINE_SQL = re.compile(r"^\s*(select|with)\s", re.IGNORECASE)
SQL_PARAM = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)s")


def is_inline_sql(text: str | None) -> bool:
    """True when a query variable's source is a SELECT statement rather than a query template
    name."""
    return text is not None and bool(INLINE_SQL.match(text))


def sql_placeholders(sql: str) -> list[str]:
    """Named ``%(name)s`` parameters of a SELECT, in order, without duplicates."""
    return list(dict.fromkeys(SQL_PARAM.findall(sql or "")))


def individual_mapping_source(row: Mapping[str, Any]) -> VariableSource:
    """An ``individual_variable_mappings`` row as a source.

    static: ``source_field`` is the value; query: ``source_field`` is a query template name and
    ``selected_column`` the result column (params bind the target's ``id``); function:
    ``source_field`` is the function, ``selected_column`` its argument.
    """
    kind = row["source_type"]
    name = row["variable_name"]
    default = row.get("default_value")
    if kind == "static":
        return VariableSource(name, "static", value=row.get("source_field") or "", default=default)
    if kind == "query":
        field = row.get("source_field") or ""
        # source_field is a query template name, or the SELECT itself (the platform lets users
        # write "a static value or a query" there) whose %(column)s placeholders are bound from
        # the target row's columns of the same name.
        params = {n: n for n in sql_placeholders(field)} if is_inline_sql(field) else {"id": "id"}
        return VariableSource(
            name,
            "query",
            query_template=field,
            column=row.get("selected_column"),
            params=params,
            default=default,
        )
    return VariableSource(
        name,
        "function",
        function=row.get("source_field"),
        argument=row.get("selected_column"),
        default=default,
    )


def auto_match(
    template_variables: Sequence[str],
    columns: Iterable[str],
    explicit: Mapping[str, VariableSource] | None = None,
    display_names: Mapping[str, str] | None = None,
    individual: Mapping[str, VariableSource] | None = None,
) -> MatchReport:
    """Match template variables to sources, in this order: the workflow's explicit mapping,
    a target column of the same name (case-insensitive), a column whose table-mapping display
    name equals the variable (``#{고객명}`` -> ``name``), an individual variable mapping.
    The rest is reported as unmapped.
    """
    explicit = explicit or {}
    individual = individual or {}
    cols = {c.lower(): c for c in columns}
    by_display = {v: k for k, v in (display_names or {}).items() if k.lower() in cols}
    matched: dict[str, VariableSource] = {}
    unmapped: list[str] = []
    for var in template_variables:
        if var in explicit:
            matched[var] = explicit[var]
        elif var.lower() in cols:
            matched[var] = VariableSource(var, "column", column=cols[var.lower()])
        elif var in by_display:
            matched[var] = VariableSource(var, "column", column=cols[by_display[var].lower()])
        elif var in individual:
            matched[var] = individual[var]
        else:
            unmapped.append(var)
    return MatchReport(matched, unmapped)


def resolve_values(
    report: MatchReport,
    row: Mapping[str, Any],
    now: datetime,
    query_lookup: QueryLookup | None = None,
) -> dict[str, object]:
    """Values for one target row, formatted as the message shows them (``format_value``:
    ``render_message`` formats the same way and leaves a str as it is). Formatted here, once:
    the rows of a long audience are spilled to disk by the phone sort, and a Decimal or a date
    costs several times a str there (1,000,000 rows' values: 2.7 s -> 1.5 s).
    ``query_lookup(source, row)`` resolves query variables."""
    values: dict[str, object] = {}
    for name, src in report.matched.items():
        value: object = None
        if src.source_type == "column":
            value = row.get(src.column or name)
        elif src.source_type == "static":
            value = src.value
        elif src.source_type == "function":
            value = evaluate_function(src.function or "", src.argument, row, now)
        elif src.source_type == "query":
            value = query_lookup(src, row) if query_lookup else None
        if (value is None or value == "") and src.default is not None:
            value = src.default
        if value is not None and value != "":
            values[name] = format_value(value)
    return values


# -- set-based query variables ------------------------------------------------------------------
BATCH_KEY = "__batch_key"
_SENTINEL = "__batch_param__"
_KEYS_SENTINEL = "__batch_keys__"


def batched_query(sql_text: str, param: str, n: int) -> str | None:
    """A one-parameter variable query rewritten to answer ``n`` parameter values at once.

    ``SELECT amount FROM payments WHERE customer_id = %(id)s ORDER BY paid_at DESC`` becomes
    ``SELECT amount, customer_id AS __batch_key FROM payments WHERE customer_id IN (%(__k0)s, …)
    ORDER BY paid_at DESC``; aggregates get ``GROUP BY customer_id``. The first row per key is
    that key's answer, as the single query's first row was. None when the query does not have
    exactly that shape (one ``column = %(param)s`` predicate, no LIMIT/HAVING/DISTINCT/UNION):
    the caller then runs it once per distinct value.
    """
    import sqlglot
    from sqlglot import exp

    marker = f"%({param})s"
    if n < 1 or sql_text.count(marker) != 1 or "%(" in sql_text.replace(marker, ""):
        return None
    try:
        tree = sqlglot.parse_one(sql_text.replace(marker, f"'{_SENTINEL}'"), read="mysql")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or any(
        tree.args.get(k) for k in ("having", "distinct", "offset")
    ):
        return None
    limit = tree.args.get("limit")
    if limit is not None:
        # LIMIT 1 asks for the first row, which is what is kept per key: drop it
        if limit.expression is None or limit.expression.sql() != "1":
            return None
        tree.set("limit", None)
    matches = [
        eq
        for eq in tree.find_all(exp.EQ)
        if isinstance(eq.expression, exp.Literal)
        and eq.expression.this == _SENTINEL
        and isinstance(eq.this, exp.Column)
    ]
    if len(matches) != 1 or matches[0].find_ancestor(exp.Subquery, exp.Or) is not None:
        return None
    column = matches[0].this
    matches[0].replace(exp.In(this=column.copy(), expressions=[exp.Literal.string(_KEYS_SENTINEL)]))
    tree = tree.select(exp.alias_(column.copy(), BATCH_KEY), copy=False)
    grouped = tree.args.get("group")
    aggregated = any(p.find(exp.AggFunc) for p in tree.expressions)
    if grouped or aggregated:
        tree = tree.group_by(column.copy(), copy=False)
    keys = ", ".join(f"%(__k{i})s" for i in range(n))
    return tree.sql(dialect="mysql").replace(f"'{_KEYS_SENTINEL}'", keys)
