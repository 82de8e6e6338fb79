"""CDC test fixtures: probe tables on both test databases, a private slot/publication per test.

Slots are cluster-wide, so every slot name carries this process's database name and a counter;
each test drops its slot and publication on teardown.
"""

from __future__ import annotations

import itertools

import psycopg
import pytest

from gfx_sync.cdc.models import CdcConfig, TableConfig, default_slot_name
from gfx_sync.cdc.snapshot import source_database, teardown

PROBE_DDL = """
CREATE TABLE IF NOT EXISTS public.cdc_items (
    id         bigint PRIMARY KEY,
    name       text,
    qty        integer,
    price      numeric(12,2),
    ok         boolean,
    tags       text[],
    doc        jsonb,
    seen_at    timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.cdc_notes (
    k1   text NOT NULL,
    k2   integer NOT NULL,
    body text,
    PRIMARY KEY (k1, k2)
);
"""

GFX_TABLES = ("gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players")
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def probe_tables(test_databases):
    for url in (test_databases.gfx_source_url, test_databases.supabase_url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(PROBE_DDL)
    return ("cdc_items", "cdc_notes")


def _truncate(url: str, tables) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(f"public.{t}" for t in tables))


class CdcEnv:
    def __init__(self, dbs, config: CdcConfig):
        self.dbs = dbs
        self.config = config
        self.source_url = dbs.gfx_source_url
        self.target_url = dbs.supabase_url

    def src(self, statement: str, params=None) -> None:
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            conn.execute(statement, params)

    def tgt_rows(self, query: str, params=None) -> list[tuple]:
        with psycopg.connect(self.target_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def src_rows(self, query: str, params=None) -> list[tuple]:
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()


def make_config(dbs, tables, **kw) -> CdcConfig:
    n = next(_counter)
    name = default_slot_name(source_database(dbs.gfx_source_url)) + f"_{n}"
    tables_cfg = tuple(
        TableConfig(t, partition_column=None if t == "cdc_notes" else "updated_at") for t in tables
    )
    return CdcConfig(tables=tables_cfg, slot_name=name, publication=f"gfx_pub_test_{n}", **kw)


@pytest.fixture
def cdc_factory(test_databases, probe_tables):
    made: list[CdcEnv] = []

    def factory(tables=probe_tables, **kw) -> CdcEnv:
        for url in (test_databases.gfx_source_url, test_databases.supabase_url):
            _truncate(url, tables)
        env = CdcEnv(test_databases, make_config(test_databases, tables, **kw))
        made.append(env)
        return env

    yield factory
    for env in made:
        teardown(env.source_url, env.target_url, env.config, drop_publication=True)


@pytest.fixture
def cdc(cdc_factory) -> CdcEnv:
    return cdc_factory()


@pytest.fixture
def platform_slot(test_databases, monkeypatch, request):
    """The platform's own CDC config (spec-list tables, gfx_publication) with a slot private to the
    requesting test module; the GFX tables start empty on both sides."""
    from gfx_sync.cdc.config import config_for

    suffix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:8]
    name = f"{default_slot_name(source_database(test_databases.gfx_source_url))}_{suffix}"
    monkeypatch.setenv("GFX_CDC_SLOT_NAME", name)
    _truncate(test_databases.gfx_source_url, GFX_TABLES)
    _truncate(test_databases.supabase_url, GFX_TABLES)
    config = config_for(test_databases.gfx_source_url)
    yield config
    teardown(
        test_databases.gfx_source_url, test_databases.supabase_url, config, drop_publication=True
    )
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
        conn.execute("DELETE FROM platform.gfx_cdc_alerts WHERE slot_name = %s", (name,))
