"""Pure logic of the messaging domain: templates, variables, message rules, phone numbers,
table mappings and SQL building. No Dagster, no clients."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from messaging import constants as C
from messaging.models import (
    FieldMapping,
    InvalidPhone,
    MatchReport,
    MessageTooLong,
    NotEncodable,
    RenderedMessage,
    TableMapping,
    TableMappingError,
    Template,
    VariableSource,
    WorkflowConfigError,
)

PLACEHOLDER = re.compile(r"#\{\s*([^{}#]+?)\s*\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MOBILE = re.compile(r"^01[016789]\d{7,8}$")

# ---------------------------------------------------------------------------------------------
# phone numbers


def normalize_phone(raw: object) -> str:
    """Digits only, ``+82``/``82`` country prefix turned into a leading 0; a Korean mobile number.

    Raises:
        InvalidPhone: empty, or not ``01[016789]`` followed by 7-8 digits.
    """
    text = "" if raw is None else str(raw).strip()
    fast = text.replace("-", "")
    if (
        len(fast) in (10, 11) and fast.isascii() and fast.isdigit() and fast.startswith("01")
    ):  # 010-1234-5678
        if MOBILE.match(fast):
            return fast
    text = unicodedata.normalize(
        "NFKC", text
    )  # full-width digits and signs typed with a Korean IME
    digits = re.sub(r"[^0-9]", "", text)
    if digits.startswith("0082"):  # international call prefix 00 + country code
        digits = digits[2:]
    if (
        text.startswith("+82")
        or text.startswith("0082")
        or (digits.startswith("82") and len(digits) in (11, 12))
    ):
        digits = "0" + digits[2:].lstrip("0")
    if not digits:
        raise InvalidPhone(f"empty phone number ({raw!r})")
    if not MOBILE.match(digits):
        raise InvalidPhone(f"not a Korean mobile number: {raw!r}")
    return digits


# ---------------------------------------------------------------------------------------------
# templates


def placeholders(text: str) -> list[str]:
    """Variable names in ``text`` (``#{name}``), in first-appearance order, without duplicates."""
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(text or "")))


@lru_cache(maxsize=256)
def _compiled(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(literals, names, raw placeholders): text = lit0 + v0 + lit1 + v1 + ... + litN (parsed once per template)."""
    literals, names, raws, pos = [], [], [], 0
    for m in PLACEHOLDER.finditer(text or ""):
        literals.append(text[pos : m.start()])
        names.append(m.group(1))
        raws.append(m.group(0))
        pos = m.end()
    literals.append((text or "")[pos:])
    return tuple(literals), tuple(names), tuple(raws)


def render(text: str, values: Mapping[str, object]) -> tuple[str, list[str]]:
    """Replace ``#{name}`` with ``values[name]``; return the text and the names left unresolved."""
    literals, names, raws = _compiled(text)
    out = [literals[0]]
    missing: list[str] = []
    for i, name in enumerate(names):
        value = values.get(name)
        if value is None:
            missing.append(name)
            out.append(raws[i])
        else:
            out.append(value if type(value) is str else format_value(value))
        out.append(literals[i + 1])
    return "".join(out), list(dict.fromkeys(missing))


def format_value(value: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "예" if value else "아니오"
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def euc_kr_bytes(text: str) -> int:
    """The byte length SOLAPI counts (EUC-KR).

    Raises:
        NotEncodable: a character outside EUC-KR (emoji, rare Hanja...), naming it.
    """
    try:
        return len(text.encode("euc-kr"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise NotEncodable(
            f"character {bad!r} at position {exc.start} is not in EUC-KR (SOLAPI 1029)"
        ) from exc


def check_length(message_type: str, text: str) -> int:
    """Validate ``text`` for ``message_type`` (sms/lms/kakao); return its size (bytes, or chars for kakao).

    Raises:
        MessageTooLong: over 90 bytes (sms), 2,000 bytes (lms) or 1,000 characters (kakao).
        NotEncodable: sms/lms text outside EUC-KR.
    """
    if message_type == "kakao":
        if len(text) > C.KAKAO_MAX_CHARS:
            raise MessageTooLong(
                f"Alimtalk is {len(text)} characters; the limit is {C.KAKAO_MAX_CHARS}"
            )
        return len(text)
    size = euc_kr_bytes(text)
    limit = {"sms": C.SMS_MAX_BYTES, "lms": C.LMS_MAX_BYTES}.get(message_type)
    if limit is None:
        raise WorkflowConfigError(f"unknown message type {message_type!r}")
    if size > limit:
        hint = " (use LMS)" if message_type == "sms" and size <= C.LMS_MAX_BYTES else ""
        raise MessageTooLong(
            f"{message_type.upper()} is {size} bytes (EUC-KR); the limit is {limit}{hint}"
        )
    return size


def apply_ad_rules(
    text: str, category: str | None, opt_out_line: str = C.DEFAULT_OPT_OUT_LINE
) -> str:
    """Promotion messages start with ``(광고)`` and end with the free opt-out line."""
    if category != "promotion":
        return text
    body = text if text.startswith(C.AD_PREFIX) else f"{C.AD_PREFIX}{text}"
    if opt_out_line and opt_out_line not in body:
        body = f"{body}\n{opt_out_line}"
    return body


def in_ad_quiet_hours(now: datetime) -> bool:
    """True between 21:00 and 08:00 Asia/Seoul, when advertising messages must not be sent."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    hour = now.astimezone(C.SEOUL).hour
    return hour >= C.AD_QUIET_START_HOUR or hour < C.AD_QUIET_END_HOUR


def unit_cost(message_type: str) -> float:
    return C.UNIT_COST_KRW[message_type]


def idempotency_key(execution_key: str, phone: str) -> str:
    """Stable per (execution, recipient); 40 hex chars fits SOLAPI customFields (values <= 100)."""
    return hashlib.sha256(f"{execution_key}|{phone}".encode()).hexdigest()[:40]


# ---------------------------------------------------------------------------------------------
# variables


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

    Shapes: ``"col"``, ``{"type": "column", "column": "col"}``, ``{"type": "static", "value": "..."}``,
    ``{"type": "query", "template": "<variable_query_templates.template_name>", "params": {"p": "col"},
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
    """True when a query variable's source is a SELECT statement rather than a query template name."""
    return bool(text) and bool(INLINE_SQL.match(text))


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
        # source_field is a query template name, or (seed 001: "정적값 또는 쿼리") the SELECT itself whose
        # %(column)s placeholders are bound from the target row's columns of the same name.
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
    """Match template variables to sources (seed 002 §3.3.2), in this order: the workflow's explicit
    mapping, a target column of the same name (case-insensitive), a column whose table-mapping display
    name equals the variable (``#{고객명}`` -> ``name``), an individual variable mapping. The rest is
    reported as unmapped.
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
    report: MatchReport, row: Mapping[str, Any], now: datetime, query_lookup=None
) -> dict[str, object]:
    """Values for one target row. ``query_lookup(source, row)`` resolves query variables."""
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
            values[name] = value
    return values


def render_message(
    template: Template,
    row: Mapping[str, Any],
    values: Mapping[str, object],
    *,
    phone_column: str,
    name_column: str | None,
    opt_out_line: str,
) -> RenderedMessage:
    """Render one recipient's message and validate it; errors are recorded, never raised."""
    raw_phone = "" if row.get(phone_column) is None else str(row.get(phone_column))
    name = None if not name_column or row.get(name_column) is None else str(row.get(name_column))
    used = {k: format_value(v) for k, v in values.items()}
    text, missing = render(template.content, used)
    text = apply_ad_rules(text, template.category, opt_out_line)
    if not missing and "#{" in text:
        missing = placeholders(
            text
        )  # a value or the opt-out line carried one: the final text decides
    msg = RenderedMessage(
        phone=None,
        raw_phone=raw_phone,
        name=name,
        content=text,
        variables=used,
        message_type=template.message_type,
        source_id=None if row.get("id") is None else str(row.get("id")),
    )
    try:
        msg.phone = normalize_phone(raw_phone)
    except InvalidPhone as exc:
        msg.error_code, msg.error_message = C.ERR_PHONE, str(exc)
        return msg
    if missing:
        msg.error_code = C.ERR_UNRESOLVED
        msg.error_message = "unresolved variable(s): " + ", ".join(f"#{{{m}}}" for m in missing)
        return msg
    try:
        check_length(template.message_type, text)
    except MessageTooLong as exc:
        msg.error_code, msg.error_message = C.ERR_TOO_LONG, str(exc)
    except NotEncodable as exc:
        msg.error_code, msg.error_message = C.ERR_CHARSET, str(exc)
    return msg


def dedupe(messages: Iterable[RenderedMessage]) -> tuple[list[RenderedMessage], int]:
    """Keep the first message per normalized phone (invalid ones are all kept, for the log)."""
    seen: set[str] = set()
    out: list[RenderedMessage] = []
    dropped = 0
    for m in messages:
        if m.phone is not None:
            if m.phone in seen:
                dropped += 1
                continue
            seen.add(m.phone)
        out.append(m)
    return out, dropped


# ---------------------------------------------------------------------------------------------
# cron


def next_cron_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of ``cron`` (in ``timezone``) strictly after ``after``."""
    # Dagster's own cron iterator (croniter is not a dependency); it handles DST as schedules do.
    from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string

    if not is_valid_cron_string(cron):
        raise WorkflowConfigError(f"invalid cron expression {cron!r}")
    for tick in cron_string_iterator(after.timestamp(), cron, timezone):
        if tick.timestamp() > after.timestamp():
            return tick
    raise WorkflowConfigError(f"cron {cron!r} has no future tick")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# table mappings (seed 002 §3.1.2) and SQL

FIELD_TYPES = ("string", "number", "date", "datetime", "boolean")


def parse_table_mappings(
    doc: Mapping[str, Any], catalog: Mapping[str, Sequence[str]] | None = None
) -> dict[str, TableMapping]:
    """Validate ``data/table-mappings.json`` and return the mappings.

    Args:
        catalog: table -> column names actually in MySQL; when given, every mapped table and field
            must exist there.

    Raises:
        TableMappingError: listing every problem found (not just the first).
    """
    problems: list[str] = []
    out: dict[str, TableMapping] = {}
    if not isinstance(doc, Mapping) or not doc:
        raise TableMappingError("table mappings must be a non-empty JSON object of tables")
    for table, spec in doc.items():
        where = f"{table}"
        if not IDENTIFIER.match(table):
            problems.append(f"{where}: not a valid table name")
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: expected an object")
            continue
        if not str(spec.get("displayName") or "").strip():
            problems.append(f"{where}: displayName is required")
        fields = spec.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            problems.append(f"{where}: fields must be a non-empty object")
            continue
        parsed: dict[str, FieldMapping] = {}
        for fname, f in fields.items():
            fw = f"{table}.{fname}"
            if not IDENTIFIER.match(fname):
                problems.append(f"{fw}: not a valid column name")
                continue
            if not isinstance(f, Mapping):
                problems.append(f"{fw}: expected an object")
                continue
            if not str(f.get("displayName") or "").strip():
                problems.append(f"{fw}: displayName is required")
            if f.get("type") not in FIELD_TYPES:
                problems.append(
                    f"{fw}: type must be one of {', '.join(FIELD_TYPES)} (got {f.get('type')!r})"
                )
            if "filterable" in f and not isinstance(f["filterable"], bool):
                problems.append(f"{fw}: filterable must be true or false")
            if catalog is not None and table in catalog and fname not in catalog[table]:
                problems.append(f"{fw}: no such column in MySQL")
            parsed[fname] = FieldMapping(
                fname,
                str(f.get("displayName") or ""),
                str(f.get("type")),
                bool(f.get("filterable", False)),
                bool(f.get("searchable", False)),
            )
        if catalog is not None and table not in catalog:
            problems.append(f"{where}: no such table in MySQL")
        for role in ("keyField", "phoneField", "nameField", "changeColumn"):
            col = spec.get(role)
            if col is not None and col not in parsed:
                problems.append(f"{where}: {role} {col!r} is not one of its fields")
        out[table] = TableMapping(
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
    if problems:
        raise TableMappingError("invalid table mappings: " + "; ".join(problems))
    return out


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
    """WHERE clause from filters on filterable fields and a keyword over searchable fields (bound params)."""
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
    page = f"SELECT {cols} FROM {table} t{where} ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}"
    count = f"SELECT COUNT(*) AS n FROM {table} t{where}"
    return page, count, params
