"""Event targeting: an event workflow reacts to one key of one table, and its target query must
bind that event's keys. A target that would reach the whole audience on every event, or that
applies one table's keys to another, is refused when the sensor loads the workflow."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import pytest
from psycopg.types.json import Jsonb

from messaging.catalog import load_table_mappings
from messaging.targeting import EventTargetRefused, check_event_target

SUBS = {"table": "subscriptions", "key_column": "id"}
GOOD_SQL = (
    "SELECT s.id, c.name, c.phone FROM subscriptions s JOIN customers c ON c.id = s.customer_id"
    " WHERE s.id > %(event_from)s AND s.id <= %(event_to)s ORDER BY s.id"
)


@pytest.fixture(scope="module")
def mappings():
    return load_table_mappings()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("trigger", "target"),
    [
        (SUBS, {"sql": GOOD_SQL}),
        (SUBS, {"sql": GOOD_SQL.replace("s.id >", "s.id >=").replace("s.id <=", "s.id <")}),
        (
            SUBS,
            {
                "sql": "SELECT s.id, c.phone FROM subscriptions AS s, customers AS c WHERE"
                " c.id = s.customer_id AND (s.status = 'active' AND s.id > %(event_from)s)"
                " AND s.id <= %(event_to)s"
            },
        ),
        (
            {"table": "customers"},
            {
                "sql": "SELECT id, phone FROM customers WHERE id > %(event_from)s"
                " AND id <= %(event_to)s"
            },
        ),
        ({"table": "customers"}, {"table": "customers", "filters": []}),
        ({"table": "customers", "key_column": "id"}, {"table": "customers", "keyword": "김"}),
    ],
)
def test_targets_bound_to_the_event_keys_are_accepted(mappings, trigger, target):
    check_event_target(trigger, target, mappings)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("trigger", "target", "reason"),
    [
        (
            SUBS,
            {"sql": "SELECT c.id, c.name, c.phone FROM customers c WHERE c.grade = 'VIP'"},
            "whole audience",
        ),
        (
            SUBS,
            {"sql": "SELECT id, phone FROM customers /* %(event_from)s %(event_to)s */"},
            "placeholder inside a comment",
        ),
        (
            SUBS,
            {"sql": GOOD_SQL.replace(" AND s.id <= %(event_to)s", "")},
            "event_to",
        ),
        (
            SUBS,
            {
                "sql": "SELECT c.id, c.phone FROM subscriptions s JOIN customers c"
                " ON c.id = s.customer_id WHERE c.id > %(event_from)s AND c.id <= %(event_to)s"
            },
            "keys of subscriptions.id applied to customers.id",
        ),
        (
            SUBS,
            {
                "sql": "SELECT s.id, c.phone FROM subscriptions s JOIN customers c"
                " ON c.id = s.customer_id WHERE s.customer_id > %(event_from)s"
                " AND s.customer_id <= %(event_to)s"
            },
            "applied to subscriptions.customer_id",
        ),
        (
            SUBS,
            {
                "sql": "SELECT s.id, c.phone FROM subscriptions s JOIN customers c"
                " ON c.id = s.customer_id WHERE s.id > %(event_from)s"
                " AND s.id <= %(event_to)s OR c.grade = 'VIP'"
            },
            "under OR",
        ),
        (
            SUBS,
            {
                "sql": "SELECT s.id, c.phone FROM subscriptions s JOIN customers c"
                " ON c.id = s.customer_id AND s.id > %(event_from)s AND s.id <= %(event_to)s"
            },
            "WHERE",
        ),
        (
            SUBS,
            {
                "sql": "SELECT id, phone FROM subscriptions s JOIN customers c"
                " ON c.id = s.customer_id WHERE id > %(event_from)s AND id <= %(event_to)s"
            },
            "qualify",
        ),
        (SUBS, {"table": "customers"}, "keys of subscriptions.id applied to customers"),
        ({"table": "customers", "key_column": "phone"}, {"table": "customers"}, "customers.id"),
        (SUBS, {"sql": GOOD_SQL.replace("s.id >", "s.id <")}, "lower bound"),
        (
            SUBS,
            {"sql": f"({GOOD_SQL}) UNION (SELECT c.id, c.name, c.phone FROM customers c)"},
            "one SELECT",
        ),
        (
            SUBS,
            {
                "sql": "SELECT c.id, c.phone FROM customers c WHERE c.id IN (SELECT s.customer_id"
                " FROM subscriptions s WHERE s.id > %(event_from)s AND s.id <= %(event_to)s)"
                " OR c.grade = 'VIP'"
            },
            "outer query's WHERE",
        ),
    ],
)
def test_targets_that_ignore_or_misapply_the_event_keys_are_refused(
    mappings, trigger, target, reason
):
    with pytest.raises(EventTargetRefused) as info:
        check_event_target(trigger, target, mappings)
    assert reason in str(info.value), str(info.value)


@pytest.mark.integration
def test_misconfigured_event_workflow_is_refused_by_the_sensor_with_a_notification(
    supabase_db, mysql_reader, crm, platform_ids
):
    from messaging.sensors import messaging_event_sensor

    name = f"whole audience {uuid.uuid4().hex[:6]}"
    wid = supabase_db.fetch_value(
        "INSERT INTO public.workflows (name, trigger_type, status, trigger_config, target_config,"
        " message_config) VALUES (%s, 'event', 'active', %s, %s, '{}') RETURNING id",
        (
            name,
            Jsonb({"table": "subscriptions", "key_column": "id", "start_after": 0}),
            Jsonb(
                {"sql": "SELECT c.id, c.name, c.phone FROM customers c", "phone_column": "phone"}
            ),
        ),
    )
    try:
        resources = {"supabase_db": supabase_db, "mysql": mysql_reader}
        cursor = None
        for _tick in range(2):  # the first tick may run other event workflows' new rows
            result = messaging_event_sensor(
                dg.build_sensor_context(cursor=cursor, resources=resources)
            )
            mine = [
                r for r in result.run_requests or [] if r.tags["messaging/workflow_id"] == str(wid)
            ]
            assert mine == [], "a target without the event keys would message everyone"
            cursor = result.cursor
            assert str(wid) not in json.loads(cursor or "{}")
        skip = result.skip_reason.skip_message if result.skip_reason else ""
        assert str(wid) in skip and "whole audience" in skip, skip
        notes = supabase_db.fetch_all(
            "SELECT severity, title, message, metadata FROM public.notifications"
            " WHERE domain = 'messaging' AND type = 'event_workflow_refused'"
            " AND metadata->>'workflow_id' = %s",
            (str(wid),),
        )
        assert len(notes) == 1, "one notification per misconfiguration, not one per tick"
        assert notes[0]["severity"] == "error" and "whole audience" in notes[0]["message"]
    finally:
        supabase_db.execute("UPDATE public.workflows SET status = 'archived' WHERE id = %s", (wid,))
