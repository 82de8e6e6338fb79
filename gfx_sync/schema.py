"""What the migrations declare versus what the live databases have (the dump check), and
source-versus-target column drift of every synced table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from gfx_sync import transform as tf
from gfx_sync.specs import SPECS

HERE = Path(__file__).parent
TARGET_MIGRATIONS = HERE / "migrations"
SOURCE_MIGRATIONS = HERE / "source_migrations"

_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (?:public\.)?(\w+) \((.*?)\n\);", re.S)
_KEYWORDS = {
    "NOT",
    "NULL",
    "PRIMARY",
    "DEFAULT",
    "GENERATED",
    "CHECK",
    "REFERENCES",
    "UNIQUE",
    "CONSTRAINT",
}
_TYPE_NAMES = {
    "timestamptz": "timestamp with time zone",
    "int": "integer",
    "bool": "boolean",
    "bigserial": "bigint",
    "serial": "integer",
    "varchar": "character varying",
}


def _normalise_type(raw: str) -> str:
    raw = raw.strip()
    array = raw.endswith("[]")
    base = raw[:-2] if array else raw
    base = _TYPE_NAMES.get(base, base)
    return base + ("[]" if array else "")


_ADD_COLUMN = re.compile(r"ADD COLUMN (?:IF NOT EXISTS )?(\w+)\s+([\w\[\]\(\),]+?)(?=[\s,;]|$)")
_ALTER = re.compile(r"ALTER TABLE (?:IF EXISTS )?(?:public\.)?(\w+)\s+(.*?);", re.S)


def _create_columns(body: str) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []
    for line in body.splitlines():
        line = line.split("--", 1)[0].strip().rstrip(",")
        if not line or line.split()[0].upper() in {
            "PRIMARY",
            "CONSTRAINT",
            "UNIQUE",
            "CHECK",
            "FOREIGN",
        }:
            continue
        parts = line.split()
        type_tokens = []
        for tok in parts[1:]:
            if tok.upper() in _KEYWORDS:
                break
            type_tokens.append(tok)
        cols.append((parts[0], _normalise_type(" ".join(type_tokens))))
    return cols


def parse_migrations(
    folder: Path, tables: dict[str, list[tuple[str, str]]] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """``{table: [(column, type), ...]}`` for every ``CREATE TABLE`` in the folder's migrations.

    Applied as PostgreSQL would: ``CREATE TABLE IF NOT EXISTS`` of a table already declared (in
    ``tables``, e.g. by an earlier migration set) changes nothing; every ``ADD COLUMN`` of an
    ``ALTER TABLE`` (several per statement allowed) is appended to its table.
    """
    tables = {} if tables is None else tables
    for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        text = "\n".join(line.split("--", 1)[0] for line in path.read_text("utf-8").splitlines())
        for name, body in _CREATE.findall(text):
            tables.setdefault(name, _create_columns(body))
        for name, clauses in _ALTER.findall(text):
            for col, typ in _ADD_COLUMN.findall(clauses):
                cols = tables.setdefault(name, [])
                if col not in dict(cols):
                    cols.append((col, _normalise_type(typ)))
    return tables


def _target_declared() -> dict[str, list[tuple[str, str]]]:
    """The Supabase side: the shared (platform) set applies first, then gfx_sync's; only the
    tables gfx_sync's migrations name are compared (other domains' are out of scope)."""
    from resources.migrations import sets_named

    ours = parse_migrations(TARGET_MIGRATIONS)
    merged: dict[str, list[tuple[str, str]]] = {}
    for mset in sets_named(["platform"]):
        parse_migrations(mset.directory(), merged)
    parse_migrations(TARGET_MIGRATIONS, merged)
    return {t: cols for t, cols in merged.items() if t in ours}


@lru_cache(maxsize=2)
def declared_columns(side: str) -> dict[str, list[tuple[str, str]]]:
    return _target_declared() if side == "supabase" else parse_migrations(SOURCE_MIGRATIONS)


def live_columns(conn, tables: list[str]) -> dict[str, list[tuple[str, str]]]:
    rows = conn.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
        (tables,),
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for rel, col, typ in rows:
        out.setdefault(rel, []).append((col, typ))
    return out


def _loose(typ: str) -> str:
    """Compare declared and live types without typmods the parser cannot see in shorthand."""
    return typ.replace(" ", "").lower()


@dataclass
class DriftReport:
    source_vs_target: dict[str, list[str]] = field(default_factory=dict)
    migrations_vs_live: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.source_vs_target.values()) and not any(self.migrations_vs_live.values())

    def lines(self) -> list[str]:
        out = [f"{t}: {p}" for t, ps in self.source_vs_target.items() for p in ps]
        out += [f"{t}: {p}" for t, ps in self.migrations_vs_live.items() for p in ps]
        return out


def migration_drift(conn, side: str) -> dict[str, list[str]]:
    """Tables/columns the migrations declare that the live schema lacks or types differently, and
    synced tables present live with columns the migrations do not declare."""
    declared = declared_columns(side)
    live = live_columns(conn, list(declared))
    problems: dict[str, list[str]] = {}
    for table, cols in declared.items():
        have = dict(live.get(table, []))
        issues = []
        if table not in live:
            issues.append(f"[{side}] table declared in migrations is missing from the live schema")
        else:
            for col, typ in cols:
                if col not in have:
                    issues.append(f"[{side}] column {col} declared in migrations is missing live")
                elif _loose(have[col]) != _loose(typ):
                    issues.append(
                        f"[{side}] column {col}: migrations say {typ}, live is {have[col]}"
                    )
            extra = [c for c in have if c not in dict(cols)]
            issues += [f"[{side}] live column {c} is not in the migrations" for c in extra]
        if issues:
            problems[table] = issues
    return problems


def drift_report(source_conn, target_conn, tables: list[str] | None = None) -> DriftReport:
    from gfx_sync.staging import table_columns

    tables = tables or [s.table for s in SPECS]
    report = DriftReport()
    for table in tables:
        report.source_vs_target[table] = tf.compare_columns(
            table_columns(source_conn, table), table_columns(target_conn, table)
        )
    for side, conn in (("supabase", target_conn), ("external", source_conn)):
        for table, issues in migration_drift(conn, side).items():
            if table in tables or side == "supabase":
                report.migrations_vs_live.setdefault(table, []).extend(issues)
    return report
