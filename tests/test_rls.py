"""RLS as on Supabase: anon reads nothing, authenticated reads and cannot write, service_role
writes (the standard policy, shown on public.notifications). Tables holding personal data
(data_quarantine here; the messaging ones in tests/messaging/test_rls.py) are service_role only."""

import psycopg
import pytest

pytestmark = pytest.mark.integration

INSERT = (
    "INSERT INTO public.notifications (domain, type, severity, title)"
    " VALUES ('rls-test', 'rls', 'info', %s)"
)


def _as(role: str, conn: psycopg.Connection, query: str, params=None):
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


@pytest.fixture
def conn(test_databases):
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as c:
        c.execute("DELETE FROM public.notifications WHERE domain = 'rls-test'")
        c.execute(INSERT, ("1",))
        c.execute("DELETE FROM public.data_quarantine WHERE domain = 'rls-test'")
        c.execute(
            "INSERT INTO public.data_quarantine (domain, source, item_id, reason)"
            " VALUES ('rls-test','s','1','r')"
        )
        yield c


def test_anon_reads_nothing(conn):
    assert _as("anon", conn, "SELECT * FROM public.notifications WHERE domain = 'rls-test'") == []


def test_anon_cannot_write(conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as("anon", conn, INSERT, ("2",))


def test_authenticated_reads_but_cannot_write(conn):
    rows = _as(
        "authenticated", conn, "SELECT title FROM public.notifications WHERE domain = 'rls-test'"
    )
    assert rows == [("1",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as("authenticated", conn, INSERT, ("3",))
    # an UPDATE/DELETE finds no row it may touch: nothing changes
    assert _as(
        "authenticated",
        conn,
        "UPDATE public.notifications SET title='x' WHERE domain='rls-test'",
    ) in (0, [])
    assert (
        conn.execute("SELECT title FROM public.notifications WHERE domain='rls-test'").fetchone()[0]
        == "1"
    )


def test_service_role_writes(conn):
    _as("service_role", conn, INSERT, ("4",))
    assert (
        _as(
            "service_role",
            conn,
            "DELETE FROM public.notifications WHERE domain='rls-test' AND title='1'",
        )
        == 1
    )
    assert [
        r[0] for r in conn.execute("SELECT title FROM public.notifications WHERE domain='rls-test'")
    ] == ["4"]


def test_quarantine_is_service_role_only(conn):
    """Quarantined items carry personal data (a customer's unusable phone number)."""
    for role in ("anon", "authenticated"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as(role, conn, "SELECT * FROM public.data_quarantine WHERE domain = 'rls-test'")
    assert _as(
        "service_role", conn, "SELECT item_id FROM public.data_quarantine WHERE domain = 'rls-test'"
    ) == [("1",)]
    reasons = _as(
        "authenticated",
        conn,
        "SELECT item_id, reason FROM public.data_quarantine_safe WHERE domain = 'rls-test'",
    )
    # the item is listed; its reason (which may quote the refused value) only for messaging's
    # own entries, phones masked (tests/messaging/test_rls.py)
    assert reasons == [("1", None)]


def test_every_table_the_migrations_create_has_rls_enabled(test_databases):
    """No table the platform's migrations create in public is left open (anon reads nothing).

    Checked on a database that only the migrations have touched, so tables that other tests
    create for themselves do not count.
    """
    from psycopg import sql

    from resources.migrations import MIGRATION_SETS, apply_migrations

    info = psycopg.conninfo.conninfo_to_dict(test_databases.supabase_url)
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    name = f"{test_databases.prefix}_rls"
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        apply_migrations(
            url, [m for m in MIGRATION_SETS if m.target == "supabase"], log=lambda _m: None
        )
        with psycopg.connect(url) as c:
            tables = c.execute(
                "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
            ).fetchall()
            visible_to_anon = []
            for table, _rls in tables:
                with c.transaction():
                    c.execute("SET LOCAL ROLE anon")
                    try:
                        with c.transaction():  # savepoint: a refused SELECT must not abort the loop
                            q = sql.SQL("SELECT 1 FROM public.{} LIMIT 1").format(
                                sql.Identifier(table)
                            )
                            if c.execute(q).fetchall():
                                visible_to_anon.append(table)
                    except psycopg.errors.InsufficientPrivilege:
                        pass
        assert len(tables) > 10  # every domain's tables are there
        assert [t for t, rls in tables if not rls] == []
        assert visible_to_anon == []
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
