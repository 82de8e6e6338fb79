"""Ordered SQL migrations per domain, applied idempotently, recorded in platform.schema_migrations.

A migration set is a folder of ``NNNN_name.sql`` files and the database it targets. Files run
in version order, each in its own transaction (unless its first line is
``-- migrate: no-transaction``), under an advisory lock so two runners never interleave.
Applying twice is a no-op; a file edited after it was applied is refused (checksum).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from resources.errors import MigrationError

MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
NO_TRANSACTION = "-- migrate: no-transaction"
LOCK_KEY = 728_014_311  # pg_advisory_lock key shared by every migration runner

BOOTSTRAP_SQL = """
CREATE SCHEMA IF NOT EXISTS platform;
CREATE TABLE IF NOT EXISTS platform.schema_migrations (
    migration_set text NOT NULL,
    version       text NOT NULL,
    name          text NOT NULL,
    checksum      text NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    duration_ms   integer NOT NULL,
    PRIMARY KEY (migration_set, version)
);
"""

# Supabase's API roles on a plain PostgreSQL, so RLS behaves as it does on Supabase.
# Roles are cluster-wide; the exception handler makes concurrent bootstraps safe.
SUPABASE_ROLES_SQL = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES ('anon', false), ('authenticated', false),
                             ('service_role', true)) AS v(name, bypass)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT%s', r.name,
                       CASE WHEN r.bypass THEN ' BYPASSRLS' ELSE '' END);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END;
    END IF;
  END LOOP;
END $$;
"""


@dataclass(frozen=True)
class MigrationSet:
    """A folder of migrations (``package``/``subdir``) for one database (``target``)."""

    name: str
    package: str
    subdir: str
    target: str  # "supabase" or "gfx_source"
    supabase_roles: bool = False
    # The external production database is not ours to change: its set (the demo/test schema of
    # the source) applies only in the local environment.
    local_only: bool = False

    def directory(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise MigrationError(
                f"package {self.package!r} for migration set {self.name!r} not found"
            )
        return Path(next(iter(spec.submodule_search_locations))) / self.subdir


# Every set, in the order they apply. Domains add their folder here; the shared set comes first.
MIGRATION_SETS: tuple[MigrationSet, ...] = (
    MigrationSet("platform", "resources", "migrations", "supabase", supabase_roles=True),
    MigrationSet("consultation_backup", "consultation_backup", "migrations", "supabase"),
    MigrationSet("messaging", "messaging", "migrations", "supabase"),
    MigrationSet("gfx_sync", "gfx_sync", "migrations", "supabase"),
    MigrationSet("gfx_source", "gfx_sync", "source_migrations", "gfx_source", local_only=True),
)


def applicable(migration_sets: Iterable[MigrationSet], environment: str) -> list[MigrationSet]:
    """The sets that may be applied in ``environment`` (local-only sets dropped in production)."""
    return [m for m in migration_sets if environment == "local" or not m.local_only]


def sets_named(names: Iterable[str]) -> list[MigrationSet]:
    wanted = list(names)
    known = {s.name: s for s in MIGRATION_SETS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise MigrationError(
            f"unknown migration set(s): {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return [known[n] for n in wanted]


@dataclass(frozen=True)
class Migration:
    migration_set: str
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(NO_TRANSACTION)


def discover(migration_set: MigrationSet) -> list[Migration]:
    """The set's migration files in version order; a missing folder is an empty set."""
    folder = migration_set.directory()
    if not folder.is_dir():
        return []
    found: dict[str, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
        version, name = match.groups()
        if version in found:
            raise MigrationError(f"{migration_set.name}: two migrations with version {version}")
        found[version] = Migration(migration_set.name, version, name, path)
    return [found[v] for v in sorted(found)]


@dataclass(frozen=True)
class MigrationReport:
    applied: list[str]
    already_applied: list[str]
    pending: list[str]
    durations_ms: dict[str, int]

    def as_metadata(self) -> dict[str, object]:
        return {
            "applied": len(self.applied),
            "already_applied": len(self.already_applied),
            "pending": len(self.pending),
            "applied_migrations": ", ".join(self.applied) or "none",
        }


def _applied(conn: psycopg.Connection, set_name: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT version, checksum FROM platform.schema_migrations WHERE migration_set = %s",
        (set_name,),
    ).fetchall()
    return {v: c for v, c in rows}


def apply_migrations(
    dsn: str,
    migration_sets: Iterable[MigrationSet],
    *,
    dry_run: bool = False,
    log: Callable[[str], object] = print,
) -> MigrationReport:
    """Apply every pending migration of ``migration_sets`` to the database at ``dsn``.

    Raises:
        MigrationError: a file failed (its transaction is rolled back, later files are not run),
            or an applied file's checksum changed.
    """
    applied: list[str] = []
    already: list[str] = []
    pending: list[str] = []
    durations: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True, application_name="platform-migrations") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(BOOTSTRAP_SQL)
            for mset in migration_sets:
                if mset.supabase_roles:
                    conn.execute(SUPABASE_ROLES_SQL)
                done = _applied(conn, mset.name)
                for mig in discover(mset):
                    label = f"{mset.name}/{mig.version}_{mig.name}"
                    if mig.version in done:
                        if done[mig.version] != mig.checksum:
                            raise MigrationError(
                                f"{label} was edited after it was applied (checksum differs); "
                                "add a new migration instead of changing an applied one"
                            )
                        already.append(label)
                        continue
                    if dry_run:
                        pending.append(label)
                        continue
                    started = time.perf_counter()
                    try:
                        if mig.transactional:
                            with conn.transaction():
                                conn.execute(mig.sql)
                                _record(conn, mig, started)
                        else:
                            conn.execute(mig.sql)
                            _record(conn, mig, started)
                    except psycopg.Error as exc:
                        raise MigrationError(f"{label} failed: {str(exc).strip()}") from exc
                    durations[label] = int((time.perf_counter() - started) * 1000)
                    applied.append(label)
                    log(f"applied {label} ({durations[label]} ms)")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return MigrationReport(applied, already, pending, durations)


def _record(conn: psycopg.Connection, mig: Migration, started: float) -> None:
    conn.execute(
        "INSERT INTO platform.schema_migrations"
        " (migration_set, version, name, checksum, duration_ms)"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            mig.migration_set,
            mig.version,
            mig.name,
            mig.checksum,
            int((time.perf_counter() - started) * 1000),
        ),
    )


def status(dsn: str, migration_sets: Iterable[MigrationSet]) -> list[dict[str, str]]:
    """One row per migration file: set, version, name, state (applied / pending / edited)."""
    rows = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT to_regclass('platform.schema_migrations') IS NOT NULL"
        ).fetchone()
        exists = bool(row and row[0])
        for mset in migration_sets:
            done = _applied(conn, mset.name) if exists else {}
            for mig in discover(mset):
                state = "pending"
                if mig.version in done:
                    state = "applied" if done[mig.version] == mig.checksum else "edited"
                rows.append(
                    {"set": mset.name, "version": mig.version, "name": mig.name, "state": state}
                )
    return rows
