"""Issue 10 §3: optional Notion webhooks. The stand-in sends the verification token and signed
events; the receiver verifies and records them durably; a sensor turns them into one edits
run within seconds (polling stays the safety net)."""

from __future__ import annotations

import json

import dagster as dg
import httpx
import pytest

from consultation_backup.definitions import defs
from consultation_backup.webhook import PATH, create_app, signature
from standins.base import EmulatorServer
from standins.notion.app import subscribe_webhooks

pytestmark = pytest.mark.integration


@pytest.fixture
def hooked(backup_env):
    env = backup_env
    with env.db.transaction() as conn:
        conn.execute("DELETE FROM public.consultation_webhook_events")
        conn.execute("DELETE FROM public.consultation_webhook_subscriptions")
    server = EmulatorServer(create_app(env.db)).start()
    sender = subscribe_webhooks(env.notion_app, f"{server.url}{PATH}")
    try:
        yield env, server, sender
    finally:
        sender.close()
        env.notion_app.workspace.webhooks = None
        server.stop()


def _events(env) -> list[dict]:
    return env.db.fetch_all(
        "SELECT event_type, entity_id, handled_at FROM consultation_webhook_events"
        " ORDER BY received_at"
    )


def test_the_handshake_stores_the_verification_token(hooked):
    env, _, sender = hooked
    assert (
        env.db.fetch_value("SELECT verification_token FROM consultation_webhook_subscriptions")
        == sender.verification_token
    )


def test_signed_events_are_recorded_once(hooked):
    env, _, sender = hooked
    page = next(iter(env.ds("consultations").pages.values()))
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"결과": {"rich_text": [{"text": {"content": "웹훅"}}]}}
    )
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    sender.drain()
    assert [(e["event_type"], e["entity_id"]) for e in _events(env)] == [
        ("page.properties_updated", page["id"]),
        ("page.deleted", page["id"]),
    ]
    # a redelivery of the same event is stored once
    body = json.dumps(sender.sent[0]).encode()
    headers = {"X-Notion-Signature": signature(sender.verification_token, body)}
    response = httpx.post(sender.url, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert len(_events(env)) == 2


def test_unsigned_or_badly_signed_events_are_refused(hooked):
    env, _, sender = hooked
    body = json.dumps({"id": "evt-1", "type": "page.created", "entity": {"id": "x"}}).encode()
    assert httpx.post(sender.url, content=body).status_code == 401
    forged = {"X-Notion-Signature": signature("secret_wrong", body)}
    assert httpx.post(sender.url, content=body, headers=forged).status_code == 401
    assert _events(env) == []


def test_the_webhook_sensor_asks_for_one_edits_run(hooked, dagster_instance):
    env, _, sender = hooked
    pages = list(env.ds("consultations").pages.values())[:3]
    for page in pages:
        env.raw_notion().pages.update(
            page_id=page["id"], properties={"결과": {"rich_text": [{"text": {"content": "훅"}}]}}
        )
    env.raw_notion().pages.update(page_id=pages[0]["id"], in_trash=True)
    sender.drain()
    sensor = defs.get_sensor_def("notion_webhook_sensor")
    resources = {k: v for k, v in env.resources().items() if k != "google_drive"}
    ctx = dg.build_sensor_context(instance=dagster_instance, resources=resources)
    request = sensor(ctx)
    assert request.job_name == "consultation_edits_job"
    config = request.run_config["ops"]["apply_notion_edits"]["config"]
    assert config["consultations_since"] and config["trashed_page_ids"] == [pages[0]["id"]]
    assert all(e["handled_at"] is not None for e in _events(env))
    again = sensor(dg.build_sensor_context(instance=dagster_instance, resources=resources))
    assert isinstance(again, dg.SkipReason)


def test_with_a_configured_secret_a_posted_handshake_token_never_signs_events(hooked, monkeypatch):
    """Anyone can POST a 'handshake' with a token of their choosing: once the operator has set
    NOTION_WEBHOOK_SECRET, only that key verifies events."""
    env, server, _sender = hooked
    monkeypatch.setenv("NOTION_WEBHOOK_SECRET", "secret_operator")
    url = f"{server.url}{PATH}"
    assert httpx.post(url, json={"verification_token": "secret_attacker"}).status_code == 200
    body = json.dumps({"id": "evt-x", "type": "page.created", "entity": {"id": "x"}}).encode()
    forged = {"X-Notion-Signature": signature("secret_attacker", body)}
    assert httpx.post(url, content=body, headers=forged).status_code == 401
    good = {"X-Notion-Signature": signature("secret_operator", body)}
    assert httpx.post(url, content=body, headers=good).status_code == 200
    assert [e["entity_id"] for e in _events(env)] == ["x"]
