"""Schema dump management (seed 003 §9): ``gfx-sync schema dump`` / ``gfx-sync schema check``.

The committed ``gfx_sync/current_schema_dump.sql`` is what gfx_sync's migrations build on
Supabase: its tables, columns, constraints, indexes, views, functions, triggers and policies,
from ``pg_dump --schema-only``, and nothing of the other domains. It is made on a fresh scratch
database: the shared (platform) set is applied and dumped, then gfx_sync's set, and the objects
the second dump adds (or changes) are gfx_sync's. The dump is normalized: no owners, no
privileges, no ``SET`` preamble, no version or timestamp comments, and pg_dump's random
``\\restrict`` key lines removed, so the same migrations always give the same file.

``schema check`` builds the same dump from the migrations again and compares it with the
committed file (a migration changed the schema without a new dump) and with the live target
(objects missing, different, or extra on gfx_sync's tables), object by object.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from resources.migrations import apply_migrations, sets_named

DUMP_PATH = Path(__file__).parent / "current_schema_dump.sql"
HEADER = (
    "-- gfx_sync schema (Supabase side) as its migrations build it: `gfx-sync schema dump`\n"
    "-- writes this file, `gfx-sync schema check` compares migrations, this file and the live\n"
    "-- database. Generated; do not edit by hand.\n"
)
_ENTRY = re.compile(r"^-- Name: (?P<name>.*?); Type: (?P<type>.*?); Schema: (?P<schema>[^;]*);")
_ON_TABLE = re.compile(r"\bON (?:ONLY )?(?:(\w+)\.)?(\w+)")


@dataclass(frozen=True)
class Entry:
    """One object of a pg_dump TOC: its header key and its normalized statement(s)."""

    kind: str
    schema: str
    name: str
    body: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.schema, self.name)

    @property
    def label(self) -> str:
        return f"{self.kind.lower()} {self.schema}.{self.name}"

    def relation(self) -> str | None:
        """The table this object belongs to (indexes, triggers, constraints, policies…)."""
        if self.kind in ("TABLE", "VIEW", "SEQUENCE"):
            return f"{self.schema}.{self.name}"
        match = _ON_TABLE.search(self.body)
        if self.kind in ("INDEX", "TRIGGER", "POLICY", "RULE") and match:
            return f"{match.group(1) or self.schema}.{match.group(2)}"
        if self.kind in ("CONSTRAINT", "FK CONSTRAINT", "DEFAULT", "ROW SECURITY"):
            return f"{self.schema}.{self.name.split()[0]}"
        return None


def parse_dump(text: str) -> list[Entry]:
    """Split a ``pg_dump --schema-only`` script into normalized entries."""
    entries: list[Entry] = []
    current: tuple[str, str, str] | None = None
    body: list[str] = []

    def close() -> None:
        if current is not None:
            statements = "\n".join(body).strip()
            if statements:
                entries.append(Entry(current[0], current[1], current[2], statements))

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _ENTRY.match(line)
        if match:
            close()
            schema = match.group("schema")
            current = (match.group("type"), "" if schema == "-" else schema, match.group("name"))
            body = []
            i += 2  # the header's closing "--" line
            continue
        if (
            line.startswith("\\restrict")
            or line.startswith("\\unrestrict")
            or line.startswith("--")
            or line.startswith("SET ")
            or line.startswith("SELECT pg_catalog.set_config")
        ):
            i += 1
            continue
        if current is not None:
            body.append(line)
        i += 1
    close()
    return [_normalize(e) for e in entries]


def _normalize(entry: Entry) -> Entry:
    body = re.sub(r"\n{3,}", "\n\n", entry.body).strip()
    return Entry(entry.kind, entry.schema, entry.name, body)


def pg_dump(dsn: str) -> str:
    """``pg_dump --schema-only --no-owner --no-privileges`` of ``dsn`` (password via the env)."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    env = dict(os.environ)
    if info.get("password"):
        env["PGPASSWORD"] = str(info["password"])
    args = ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--no-comments"]
    for opt, key in (("-h", "host"), ("-p", "port"), ("-U", "user"), ("-d", "dbname")):
        if info.get(key):
            args += [opt, str(info[key])]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout


def _admin_dsn(target_dsn: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(os.environ.get("PG_ADMIN_URL") or target_dsn)
    info["dbname"] = "postgres"
    return psycopg.conninfo.make_conninfo(**info)


@contextmanager
def scratch_database(target_dsn: str) -> Iterator[str]:
    """A new empty database on the target's server, dropped afterwards."""
    name = f"gfx_schema_{secrets.token_hex(4)}"
    admin = _admin_dsn(target_dsn)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def gfx_entries_from_migrations(target_dsn: str) -> list[Entry]:
    """gfx_sync's objects as its migrations build them on a fresh database."""
    with scratch_database(target_dsn) as dsn:
        apply_migrations(dsn, sets_named(["platform"]), log=lambda _m: None)
        before = {e.key: e.body for e in parse_dump(pg_dump(dsn))}
        apply_migrations(dsn, sets_named(["gfx_sync"]), log=lambda _m: None)
        after = parse_dump(pg_dump(dsn))
    return [e for e in after if before.get(e.key) != e.body]


def render(entries: list[Entry]) -> str:
    parts = [HEADER]
    for e in sorted(entries, key=lambda x: (x.kind, x.schema, x.name)):
        parts.append(f"-- {e.kind} {e.schema}.{e.name}\n{e.body}\n")
    return "\n".join(parts)


def read_dump(path: Path = DUMP_PATH) -> list[Entry]:
    """The committed dump's entries (its own ``-- KIND schema.name`` headers)."""
    if not path.exists():
        return []
    entries: list[Entry] = []
    for chunk in re.split(r"\n(?=-- [A-Z][A-Z ]* \S*\.\S)", path.read_text("utf-8")):
        head, _, body = chunk.partition("\n")
        m = re.match(r"-- ([A-Z][A-Z ]*?) (\S*?)\.(.*)$", head)
        if m:
            entries.append(Entry(m.group(1), m.group(2), m.group(3), body.strip()))
    return entries


def write_dump(target_dsn: str, path: Path = DUMP_PATH) -> int:
    """Write the dump from the migrations; returns the number of objects."""
    entries = gfx_entries_from_migrations(target_dsn)
    path.write_text(render(entries), encoding="utf-8")
    return len(entries)


@dataclass
class SchemaCheck:
    migrations_vs_dump: list[str] = field(default_factory=list)
    live_vs_dump: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.migrations_vs_dump and not self.live_vs_dump

    def lines(self) -> list[str]:
        return [f"migrations vs dump: {p}" for p in self.migrations_vs_dump] + [
            f"live vs dump: {p}" for p in self.live_vs_dump
        ]


def compare(expected: list[Entry], actual: list[Entry], extra_scope: set[str]) -> list[str]:
    """Objects missing from ``actual``, different there, or extra on a relation in scope."""
    want = {e.key: e for e in expected}
    have = {e.key: e for e in actual}
    problems = [f"{e.label} missing" for k, e in want.items() if k not in have]
    problems += [
        f"{e.label} differs" for k, e in want.items() if k in have and have[k].body != e.body
    ]
    problems += [
        f"{e.label} not in the dump"
        for k, e in have.items()
        if k not in want and (e.relation() in extra_scope)
    ]
    return sorted(problems)


def check(target_dsn: str, path: Path = DUMP_PATH) -> SchemaCheck:
    """Migrations (fresh database) vs the committed dump, and the live target vs the dump."""
    fresh = gfx_entries_from_migrations(target_dsn)
    committed = read_dump(path)
    result = SchemaCheck()
    if not committed:
        result.migrations_vs_dump.append(f"{path.name} is missing: run `gfx-sync schema dump`")
    else:
        scope = {r for e in committed if (r := e.relation())}
        result.migrations_vs_dump = compare(committed, fresh, scope)
    scope = {r for e in fresh if e.kind in ("TABLE", "VIEW") and (r := e.relation())}
    live = parse_dump(pg_dump(target_dsn))
    result.live_vs_dump = compare(committed or fresh, live, scope)
    return result
