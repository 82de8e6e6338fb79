"""Test session: real PostgreSQL and MariaDB, one private set of databases per test process.

Each pytest process (and each xdist worker) creates its own ``t<pid>_<hex>_*`` databases,
points the environment contract at them, applies every migration, and drops them at the end,
so several suites can run at once on one machine without touching the demo databases.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from resources.circuit_breaker import reset_all_breakers
from resources.environment import LOCAL_DEFAULTS
from resources.migrations import MIGRATION_SETS, apply_migrations
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource, close_all_pools
from tooling.local_setup import prepare_local_environment
from tooling.services import (
    PG_ADMIN_URL,
    MySQLAdmin,
    ensure_mysql,
    ensure_postgres,
    grant_read_only,
)

LEVELS = ("unit", "integration", "e2e")
# Fixtures that reach a database server; a unit test must not use one, even indirectly.
SERVER_FIXTURES = frozenset({"test_databases"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test has exactly one level, and a unit test touches no database.

    A test without a level would silently drop out of `pytest -m unit|integration|e2e`; a unit
    test that needs PostgreSQL would break the promise that `pytest -m unit` runs without it.
    A module of one level says so in `pytestmark`; a mixed module marks each test instead.
    """
    problems = []
    for item in items:
        levels = sorted({m.name for m in item.iter_markers() if m.name in LEVELS})
        if len(levels) != 1:
            found = ", ".join(levels) or "none"
            problems.append(f"{item.nodeid}: needs exactly one of {', '.join(LEVELS)} ({found})")
        elif levels == ["unit"] and SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            problems.append(f"{item.nodeid}: marked unit but uses a database fixture")
    if problems:
        raise pytest.UsageError("test levels:\n" + "\n".join(problems))


def pytest_configure(config: pytest.Config) -> None:
    """The test session is an entry point: it fills the local defaults, as the CLIs do."""
    os.environ.setdefault("PLATFORM_ENV", "local")
    prepare_local_environment()


@dataclass
class TestDatabases:
    prefix: str
    supabase_url: str
    gfx_source_url: str
    mysql_database: str


def _url(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def _drop_pg(conn: psycopg.Connection, name: str, *, stale: bool = False) -> None:
    if stale:  # a dead run's orphaned replication reader would keep the database busy
        conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE database = %s AND active",
            (name,),
        )
        time.sleep(0.2)
    conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
        " WHERE database = %s AND NOT active",
        (name,),
    )
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _sweep_stale(conn: psycopg.Connection, admin: MySQLAdmin) -> None:
    """Drop databases left by test processes that no longer exist (killed runs)."""
    for (name,) in conn.execute(
        "SELECT datname FROM pg_database WHERE datname ~ '^t[0-9]+_[0-9a-f]{6}_'"
    ).fetchall():
        pid = int(name[1:].split("_", 1)[0])
        if not os.path.exists(f"/proc/{pid}"):
            # A leftover of a killed run may still be streaming to an orphaned process: leave it
            # for a later sweep rather than failing this session.
            with contextlib.suppress(psycopg.errors.ObjectInUse):
                _drop_pg(conn, name, stale=True)
    with admin.connect() as my, my.cursor() as cur:
        cur.execute("SHOW DATABASES")
        for (name,) in cur.fetchall():
            owner = name[1:].split("_", 1)[0]
            ours = name.startswith("t") and "_" in name and owner.isdigit()
            if ours and not os.path.exists(f"/proc/{int(owner)}"):
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def test_databases() -> TestDatabases:
    ensure_postgres([])
    ensure_mysql(
        LOCAL_DEFAULTS["MYSQL_DATABASE"],
        os.environ["MYSQL_READ_USER"],
        os.environ["MYSQL_READ_PASSWORD"],
    )
    admin = MySQLAdmin()
    prefix = f"t{os.getpid()}_{secrets.token_hex(3)}"
    dbs = TestDatabases(prefix, _url(f"{prefix}_supabase"), _url(f"{prefix}_gfx"), f"{prefix}_ops")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        _sweep_stale(conn, admin)
        for name in (f"{prefix}_supabase", f"{prefix}_gfx"):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with admin.connect() as my, my.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE `{dbs.mysql_database}`"
            " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        grant_read_only(
            cur,
            dbs.mysql_database,
            os.environ["MYSQL_READ_USER"],
            os.environ["MYSQL_READ_PASSWORD"],
        )
    saved = {
        k: os.environ.get(k) for k in ("SUPABASE_DB_URL", "GFX_SOURCE_DB_URL", "MYSQL_DATABASE")
    }
    os.environ.update(
        SUPABASE_DB_URL=dbs.supabase_url,
        GFX_SOURCE_DB_URL=dbs.gfx_source_url,
        MYSQL_DATABASE=dbs.mysql_database,
    )
    for target, url in (("supabase", dbs.supabase_url), ("gfx_source", dbs.gfx_source_url)):
        apply_migrations(
            url, [m for m in MIGRATION_SETS if m.target == target], log=lambda _m: None
        )
    try:
        yield dbs
    finally:
        close_all_pools()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in (f"{prefix}_supabase", f"{prefix}_gfx"):
                _drop_pg(conn, name)
        with admin.connect() as my, my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{dbs.mysql_database}`")
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def supabase_db(test_databases: TestDatabases) -> PostgresResource:
    return PostgresResource(dsn=test_databases.supabase_url, application_name="tests-supabase")


@pytest.fixture(scope="session")
def gfx_source_db(test_databases: TestDatabases) -> PostgresResource:
    return PostgresResource(dsn=test_databases.gfx_source_url, application_name="tests-gfx-source")


@pytest.fixture(scope="session")
def mysql_admin(test_databases: TestDatabases):
    """A root connection to this session's MySQL database, for seeding test data."""
    conn = MySQLAdmin().connect(test_databases.mysql_database)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def mysql_reader(test_databases: TestDatabases) -> MySQLResource:
    return MySQLResource(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_READ_USER"],
        password=os.environ["MYSQL_READ_PASSWORD"],
        database=test_databases.mysql_database,
        statement_timeout_s=2,
    )


def _close_shared_breakers(dsn: str) -> None:
    """Close the breakers kept in this session's database: a Dagster run or a command line of
    one test (another process, so not in this process's registry) may have opened one, and
    the next test on the same database would find it open for five minutes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('platform.circuit_breakers')").fetchone()[0]:
            conn.execute(
                "UPDATE platform.circuit_breakers SET state = 'closed', fail_counter = 0,"
                " success_counter = 0, opened_at = NULL"
                " WHERE state <> 'closed' OR fail_counter <> 0 OR success_counter <> 0"
            )


@pytest.fixture(autouse=True)
def _fresh_breakers(request: pytest.FixtureRequest):
    """Circuit breakers are per process, and shared ones live in the session's database; every
    test starts with all of them closed."""
    dsn = (
        request.getfixturevalue("test_databases").supabase_url
        if "test_databases" in request.fixturenames
        else None
    )
    reset_all_breakers()
    if dsn:
        _close_shared_breakers(dsn)
    yield
    reset_all_breakers()
    if dsn:
        _close_shared_breakers(dsn)


@pytest.fixture
def dagster_instance():
    import dagster as dg

    with dg.instance_for_test() as instance:
        yield instance
