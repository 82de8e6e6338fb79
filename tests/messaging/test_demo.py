"""`python -m messaging.demo` against this session's private databases: idempotent, realistic,
complete."""

from __future__ import annotations

import pytest

from messaging.demo import main

pytestmark = pytest.mark.integration


def test_demo_seeds_workflows_templates_and_a_webhook_event(supabase_db, crm):
    assert main(["--scale", "tiny"]) == 0
    assert main(["--scale", "tiny"]) == 0  # twice is harmless
    workflows = supabase_db.fetch_all(
        "SELECT name, trigger_type, status, schedule_config FROM public.workflows"
        " WHERE created_by = 'demo'"
    )
    kinds = sorted(w["trigger_type"] for w in workflows)
    assert kinds == ["event", "manual", "schedule", "webhook"]
    assert (
        next(w for w in workflows if w["trigger_type"] == "schedule")["schedule_config"]["cron"]
        == "*/5 * * * *"
    )
    assert (
        supabase_db.fetch_value(
            "SELECT count(*) FROM public.message_templates WHERE created_by = 'demo'"
        )
        == 4
    )
    events = supabase_db.fetch_all(
        "SELECT event_id, payload FROM public.messaging_webhook_events"
        " WHERE event_id LIKE 'demo-signup-%%'"
    )
    assert len(events) == 1 and isinstance(events[0]["payload"]["customer_id"], int)
    with crm.cursor() as cur:
        cur.execute("SELECT name, phone FROM customers WHERE phone LIKE '010-%%' LIMIT 1")
        name, phone = cur.fetchone()
    assert 2 <= len(name) <= 4 and len(phone) == 13
