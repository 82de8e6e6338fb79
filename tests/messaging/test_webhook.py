"""The webhook endpoint: what a signature covers, replays, sender retries, body limits, bad JSON
and the transition from the old signature. Each test drives the real Starlette app against this
session's Supabase database (no Dagster involved: events wait in the table)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from messaging.models import WebhookRejected
from messaging.webhook import (
    MAX_BODY_BYTES,
    create_webhook_app,
    json_depth,
    sign,
    sign_v2,
    verify,
)

SECRET = "test-webhook-secret"
PAST = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _headers(path: str, body: bytes, *, event_id: str | None = None, ts: str | None = None):
    ts = ts or str(int(time.time()))
    headers = {
        "X-Webhook-Timestamp": ts,
        "X-Webhook-Signature": sign_v2(SECRET, "POST", path, ts, event_id or "", body),
        "Content-Type": "application/json",
    }
    if event_id:
        headers["X-Webhook-Id"] = event_id
    return headers


def _legacy_headers(body: bytes, *, event_id: str | None = None):
    ts = str(int(time.time()))
    headers = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(SECRET, ts, body)}
    if event_id:
        headers["X-Webhook-Id"] = event_id
    return headers


@pytest.fixture
def webhook_workflows(supabase_db):
    """Two active webhook workflows (so a call can be replayed from one path to the other)."""
    ids = []
    with supabase_db.transaction() as conn:
        for name in ("hook A", "hook B"):
            ids.append(
                str(
                    conn.execute(
                        "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
                        " message_config) VALUES (%s, 'webhook', 'active', %s, '{}') RETURNING id",
                        (name, Jsonb({"table": "customers"})),
                    ).fetchone()[0]
                )
            )
    return ids


@pytest.fixture
def client(supabase_db):
    return TestClient(create_webhook_app(supabase_db, SECRET, legacy_until=FUTURE))


def _events(supabase_db, wid: str) -> int:
    return supabase_db.fetch_value(
        "SELECT count(*) FROM public.messaging_webhook_events WHERE workflow_id = %s", (wid,)
    )


# --- signature ------------------------------------------------------------------------------


@pytest.mark.unit
def test_signature_covers_method_path_timestamp_and_event_id():
    body, ts = b'{"a": 1}', "1700000000"
    good = sign_v2(SECRET, "POST", "/webhooks/x", ts, "e1", body)
    verify(SECRET, "POST", "/webhooks/x", ts, "e1", good, body, now=1_700_000_000)
    for method, path, stamp, event in (
        ("PUT", "/webhooks/x", ts, "e1"),
        ("POST", "/webhooks/y", ts, "e1"),
        ("POST", "/webhooks/x", "1700000001", "e1"),
        ("POST", "/webhooks/x", ts, "e2"),
    ):
        with pytest.raises(WebhookRejected) as info:
            verify(SECRET, method, path, stamp, event, good, body, now=1_700_000_000)
        assert info.value.status == 401, (method, path, stamp, event)


@pytest.mark.unit
def test_timestamp_outside_five_minutes_is_refused():
    body, ts = b"{}", "1700000000"
    good = sign_v2(SECRET, "POST", "/p", ts, "", body)
    verify(SECRET, "POST", "/p", ts, "", good, body, now=1_700_000_000 + 299)
    with pytest.raises(WebhookRejected, match="5 minutes"):
        verify(SECRET, "POST", "/p", ts, "", good, body, now=1_700_000_000 + 301)


@pytest.mark.unit
def test_old_signature_accepted_until_the_transition_ends_then_refused():
    body, ts = b"{}", "1700000000"
    old = sign(SECRET, ts, body)
    now = 1_700_000_000
    scheme = verify(SECRET, "POST", "/p", ts, "", old, body, now=now, legacy_until=FUTURE)
    assert scheme == "legacy"
    with pytest.raises(WebhookRejected, match="old signature"):
        verify(SECRET, "POST", "/p", ts, "", old, body, now=now, legacy_until=PAST)


@pytest.mark.unit
def test_json_depth_counts_nesting():
    assert json_depth({"a": 1}) == 1
    assert json_depth({"a": [{"b": []}]}) == 4
    deep: dict = {}
    cur = deep
    for _ in range(40):
        cur["x"] = {}
        cur = cur["x"]
    assert json_depth(deep) == 41


# --- replays --------------------------------------------------------------------------------


@pytest.mark.integration
def test_signed_call_replayed_to_another_workflow_is_refused(
    client, supabase_db, webhook_workflows
):
    a, b = webhook_workflows
    body = b'{"customer_id": 1}'
    headers = _headers(f"/webhooks/{a}", body, event_id=f"cross-{uuid.uuid4()}")
    assert client.post(f"/webhooks/{a}", content=body, headers=headers).status_code == 202
    replay = client.post(f"/webhooks/{b}", content=body, headers=headers)
    assert replay.status_code == 401, replay.text
    assert _events(supabase_db, b) == 0


@pytest.mark.integration
def test_replay_with_a_new_event_id_is_refused(client, supabase_db, webhook_workflows):
    a, _ = webhook_workflows
    body = b'{"customer_id": 2}'
    headers = _headers(f"/webhooks/{a}", body, event_id="evt-original")
    assert client.post(f"/webhooks/{a}", content=body, headers=headers).status_code == 202
    forged = {**headers, "X-Webhook-Id": "evt-forged"}
    assert client.post(f"/webhooks/{a}", content=body, headers=forged).status_code == 401
    assert _events(supabase_db, a) == 1


@pytest.mark.integration
def test_legacy_call_replayed_with_another_id_or_path_is_not_run_twice(
    client, supabase_db, webhook_workflows
):
    """The old signature does not cover the path or the id: during the transition a replay of
    the same signed bytes (same timestamp and signature) is acknowledged, never stored again."""
    a, b = webhook_workflows
    body = b'{"customer_id": 3}'
    headers = _legacy_headers(body, event_id="legacy-1")
    first = client.post(f"/webhooks/{a}", content=body, headers=headers)
    assert first.status_code == 202
    again = client.post(
        f"/webhooks/{a}", content=body, headers={**headers, "X-Webhook-Id": "legacy-2"}
    )
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    other = client.post(f"/webhooks/{b}", content=body, headers=headers)
    assert (other.status_code, other.json()["duplicate"]) == (200, True)
    assert (_events(supabase_db, a), _events(supabase_db, b)) == (1, 0)


@pytest.mark.integration
def test_event_id_seen_before_is_acknowledged_without_a_second_event(
    client, supabase_db, webhook_workflows
):
    a, _ = webhook_workflows
    body = b'{"customer_id": 4}'
    event_id = f"evt-{uuid.uuid4()}"
    first = client.post(
        f"/webhooks/{a}", content=body, headers=_headers(f"/webhooks/{a}", body, event_id=event_id)
    )
    # the sender retries later with a fresh timestamp and signature, same id
    time.sleep(1.1)
    retry = client.post(
        f"/webhooks/{a}", content=body, headers=_headers(f"/webhooks/{a}", body, event_id=event_id)
    )
    assert first.status_code == 202
    assert (retry.status_code, retry.json()["duplicate"], retry.json()["id"]) == (
        200,
        True,
        first.json()["id"],
    )
    assert _events(supabase_db, a) == 1


@pytest.mark.integration
def test_sender_retry_without_id_is_deduplicated_by_body_within_the_window(
    client, supabase_db, webhook_workflows
):
    a, _ = webhook_workflows
    body = b'{"customer_id": 5}'
    first = client.post(f"/webhooks/{a}", content=body, headers=_headers(f"/webhooks/{a}", body))
    time.sleep(1.1)  # a retry signs again: another timestamp, same body
    retry = client.post(f"/webhooks/{a}", content=body, headers=_headers(f"/webhooks/{a}", body))
    assert first.status_code == 202
    assert (retry.status_code, retry.json()["duplicate"]) == (200, True)
    assert _events(supabase_db, a) == 1
    # outside the window the same body is a new event
    supabase_db.execute(
        "UPDATE public.messaging_webhook_events SET received_at = now() - interval '6 minutes'"
        " WHERE workflow_id = %s",
        (a,),
    )
    later = client.post(f"/webhooks/{a}", content=body, headers=_headers(f"/webhooks/{a}", body))
    assert later.status_code == 202
    assert _events(supabase_db, a) == 2


# --- bodies ---------------------------------------------------------------------------------


def _asgi_post(app, path: str, chunks: list[bytes], headers: dict[str, str]):
    """Drive the ASGI app directly; returns (status, bytes the app pulled from the client)."""
    pulled = 0
    pending = list(chunks)
    status: list[int] = []

    async def receive():
        nonlocal pulled
        if pending:
            chunk = pending.pop(0)
            pulled += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    return status[0], pulled


@pytest.mark.integration
def test_body_over_256_kib_refused_before_it_is_read_whole(supabase_db, webhook_workflows):
    a, _ = webhook_workflows
    app = create_webhook_app(supabase_db, SECRET, legacy_until=FUTURE)
    chunk = b"x" * 65_536
    chunks = [chunk] * 64  # 4 MiB offered
    path = f"/webhooks/{a}"
    declared = {"content-length": str(len(chunk) * 64), **_headers(path, b"")}
    status, pulled = _asgi_post(app, path, list(chunks), declared)
    assert status == 413 and pulled == 0
    chunked = {"transfer-encoding": "chunked", **_headers(path, b"")}
    status, pulled = _asgi_post(app, path, list(chunks), chunked)
    assert status == 413
    assert pulled <= MAX_BODY_BYTES + len(chunk)
    assert _events(supabase_db, a) == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "malformed"),
        (b"[1, 2]", "non-object"),
        (b'"text"', "non-object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b'{"a": 1e999}', "a number that overflows to infinity"),
        (b'{"a": ' + b"9" * 5000 + b"}", "an integer too long to convert"),
        (b'{"a": "\\u0000"}', "NUL cannot be stored"),
        (json.dumps(json.loads("[" * 33 + "]" * 33)).join(['{"a": ', "}"]).encode(), "depth 34"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "very deep"),
    ],
)
def test_bad_json_gets_a_4xx_never_a_500(client, supabase_db, webhook_workflows, body, why):
    a, _ = webhook_workflows
    path = f"/webhooks/{a}"
    response = client.post(path, content=body, headers=_headers(path, body))
    assert 400 <= response.status_code < 500, (why, response.status_code, response.text)
    assert _events(supabase_db, a) == 0


@pytest.mark.integration
def test_json_at_the_depth_limit_is_accepted(client, supabase_db, webhook_workflows):
    a, _ = webhook_workflows
    path = f"/webhooks/{a}"
    body = json.dumps({"a": json.loads("[" * 31 + "]" * 31)}).encode()  # depth 32
    assert client.post(path, content=body, headers=_headers(path, body)).status_code == 202


@pytest.mark.integration
def test_old_signature_refused_after_the_transition(supabase_db, webhook_workflows):
    a, _ = webhook_workflows
    body = b'{"customer_id": 6}'
    ended = TestClient(create_webhook_app(supabase_db, SECRET, legacy_until=PAST))
    refused = ended.post(f"/webhooks/{a}", content=body, headers=_legacy_headers(body))
    assert refused.status_code == 401 and "old signature" in refused.json()["error"]
    during = TestClient(
        create_webhook_app(supabase_db, SECRET, legacy_until=datetime.now(UTC) + timedelta(days=1))
    )
    accepted = during.post(f"/webhooks/{a}", content=body, headers=_legacy_headers(body))
    assert accepted.status_code == 202
    assert accepted.headers["Deprecation"] == "true"


@pytest.mark.integration
def test_unusable_event_ids_get_a_400(client, supabase_db, webhook_workflows):
    a, _ = webhook_workflows
    path = f"/webhooks/{a}"
    body = b'{"customer_id": 7}'
    for event_id in ("x" * 201, "tab\there"):
        response = client.post(path, content=body, headers=_headers(path, body, event_id=event_id))
        assert response.status_code == 400, (event_id, response.status_code)
    assert _events(supabase_db, a) == 0
