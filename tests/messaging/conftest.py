"""Messaging fixtures: the CRM tables in this session's MariaDB, the demo platform rows in this
session's Supabase database, and the SOLAPI stand-in served on a free port."""

from __future__ import annotations

import pytest

from messaging.demo import create_crm_tables, fill_crm, seed_platform
from resources.solapi import SolapiResource
from standins import solapi as solapi_standin
from standins.base import EmulatorServer
from tests.support.messaging import make_solapi, manual_workflow

CUSTOMERS = 60


@pytest.fixture(scope="session")
def crm(mysql_admin):
    create_crm_tables(mysql_admin)
    with mysql_admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM customers")
        if cur.fetchone()[0] == 0:
            fill_crm(mysql_admin, CUSTOMERS, seed=7)
    return mysql_admin


@pytest.fixture(scope="session")
def platform_ids(supabase_db, crm):
    with supabase_db.transaction() as conn:
        return seed_platform(conn)


@pytest.fixture(scope="session")
def solapi_server():
    app, state, injector = solapi_standin.build()
    state.delivery_delay_s = 0.0
    server = EmulatorServer(app, name="solapi").start()
    yield server, state, injector
    server.stop()


@pytest.fixture
def solapi_standin_state(solapi_server):
    server, state, injector = solapi_server
    injector.reset()
    state.lose_responses = 0
    state.hold_sends, state.hold_s, state.list_lag_s = 0, 0.0, 0.0
    state.clock_skew_s = 0.0
    state.rejected = set()
    return state


@pytest.fixture
def solapi(solapi_server) -> SolapiResource:
    server, _state, _injector = solapi_server
    client: SolapiResource = make_solapi(server.url, max_attempts=2)
    return client


@pytest.fixture
def all_customers_workflow(supabase_db, platform_ids):
    """A notification workflow to every customer (SMS), for the exactly-once tests."""
    return manual_workflow(supabase_db, "전체 공지", "#{name}님 공지입니다", {"table": "customers"})
