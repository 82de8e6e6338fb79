"""RLS as on Supabase: anon reads nothing, authenticated reads but cannot write, service_role writes."""

import psycopg
import pytest


def _as(role: str, conn: psycopg.Connection, query: str, params=None):
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


@pytest.fixture
def conn(test_databases):
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as c:
        c.execute("DELETE FROM public.data_quarantine WHERE domain = 'rls-test'")
        c.execute("INSERT INTO public.data_quarantine (domain, source, item_id, reason) VALUES ('rls-test','s','1','r')")
        yield c


def test_anon_reads_nothing(conn):
    assert _as("anon", conn, "SELECT * FROM public.data_quarantine WHERE domain = 'rls-test'") == []


def test_anon_cannot_write(conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as("anon", conn, "INSERT INTO public.data_quarantine (domain, source, item_id, reason) VALUES ('rls-test','s','2','r')")


def test_authenticated_reads_but_cannot_write(conn):
    rows = _as("authenticated", conn, "SELECT item_id FROM public.data_quarantine WHERE domain = 'rls-test'")
    assert rows == [("1",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as("authenticated", conn,
            "INSERT INTO public.data_quarantine (domain, source, item_id, reason) VALUES ('rls-test','s','3','r')")
    # an UPDATE/DELETE finds no row it may touch: nothing changes
    assert _as("authenticated", conn, "UPDATE public.data_quarantine SET reason='x' WHERE domain='rls-test'") in (0, [])
    assert conn.execute("SELECT reason FROM public.data_quarantine WHERE domain='rls-test'").fetchone()[0] == "r"


def test_service_role_writes(conn):
    _as("service_role", conn,
        "INSERT INTO public.data_quarantine (domain, source, item_id, reason) VALUES ('rls-test','s','4','r')")
    assert _as("service_role", conn, "DELETE FROM public.data_quarantine WHERE domain='rls-test' AND item_id='1'") == 1
    assert [r[0] for r in conn.execute("SELECT item_id FROM public.data_quarantine WHERE domain='rls-test'")] == ["4"]


def test_every_public_table_has_rls_enabled(supabase_db):
    """No table the platform creates in public is left open (anon reads nothing anywhere)."""
    open_tables = supabase_db.fetch_all(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relrowsecurity")
    assert open_tables == []
