"""The platform-wide notifications table and its writer."""

import psycopg
import pytest

from resources.notifications import notify

pytestmark = pytest.mark.integration


def test_notify_writes_one_row_per_dedupe_key_and_any_number_without(test_databases):
    with psycopg.connect(test_databases.supabase_url) as conn:
        first = notify(
            conn, domain="lead_test", type="t", severity="error", title="a", dedupe_key="k1"
        )
        again = notify(
            conn, domain="lead_test", type="t", severity="error", title="b", dedupe_key="k1"
        )
        free = [
            notify(conn, domain="lead_test", type="t", severity="info", title="c") for _ in range(2)
        ]
        rows = conn.execute(
            "SELECT title, delivered_at FROM public.notifications WHERE domain = 'lead_test'"
            " ORDER BY id"
        ).fetchall()
        conn.rollback()
    assert first is not None and again is None and None not in free
    assert rows == [("a", None), ("c", None), ("c", None)]


def test_notify_refuses_an_unknown_severity(test_databases):
    with psycopg.connect(test_databases.supabase_url) as conn, pytest.raises(ValueError):
        notify(conn, domain="lead_test", type="t", severity="fatal", title="x")  # type: ignore[arg-type]
