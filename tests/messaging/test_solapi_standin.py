"""The SOLAPI stand-in through the real HTTP client (SolapiResource over httpx)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from resources.environment import LOCAL_DEFAULTS
from resources.errors import PermanentError, ServiceUnavailable, TransientError
from resources.solapi import SolapiResource, solapi_authorization

pytestmark = pytest.mark.integration

KEY, SECRET = LOCAL_DEFAULTS["SOLAPI_API_KEY"], LOCAL_DEFAULTS["SOLAPI_API_SECRET"]
SENDER = LOCAL_DEFAULTS["SOLAPI_SENDER"]


def _sms(to: str, text: str = "테스트 메시지", key: str | None = None) -> dict:
    msg = {"to": to, "from": SENDER, "text": text, "type": "SMS"}
    if key:
        msg["customFields"] = {"idempotencyKey": key}
    return msg


def _post(url: str, auth: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{url}/messages/v4/send-many/detail", json=body, headers={"Authorization": auth}
    )


def test_auth_rejects_bad_signature_stale_date_and_reused_signature(
    solapi_server, solapi_standin_state
):
    server = solapi_server[0]
    body = {"messages": [_sms("01012340000")]}
    bad = solapi_authorization(KEY, "wrong-secret")
    assert _post(server.url, bad, body).json()["errorCode"] == "SignatureDoesNotMatch"
    stale = solapi_authorization(KEY, SECRET, now=datetime.now(UTC) - timedelta(minutes=16))
    response = _post(server.url, stale, body)
    assert response.status_code == 403 and response.json()["errorCode"] == "RequestTimeTooSkewed"
    assert (
        _post(server.url, solapi_authorization("NOPE", SECRET), body).json()["errorCode"]
        == "InvalidAPIKey"
    )
    good = solapi_authorization(KEY, SECRET, salt="fixed-salt-123456")
    assert _post(server.url, good, body).status_code == 200
    reused = _post(server.url, good, body)
    assert reused.status_code == 403 and reused.json()["errorCode"] == "DuplicatedSignature"


def test_partial_failures_come_in_a_200(solapi, solapi_standin_state):
    solapi_standin_state.rejected = {"01099990000"}
    messages = [
        _sms("01011110001", key="k1"),
        _sms("01099990000", key="k2"),
        _sms("01011110001", key="k3"),
        _sms("01011110002", "😀", key="k4"),
        _sms("01011110003", "가" * 46, key="k5"),
        {**_sms("01011110004", key="k6"), "from": "0299999999"},
    ]
    out = solapi.send_many_detail(messages)
    codes = {f.idempotency_key: f.status_code for f in out.failed}
    assert codes == {"k2": "1022", "k3": "1026", "k4": "1029", "k5": "1013", "k6": "1062"}
    assert [m.idempotency_key for m in out.accepted] == ["k1"]
    assert out.registered_failed == 5


def test_ten_thousand_limit(solapi, solapi_server):
    with pytest.raises(ValueError):
        solapi.send_many_detail([_sms("01011110001")] * 10_001)
    auth = solapi_authorization(KEY, SECRET)
    response = _post(solapi_server[0].url, auth, {"messages": [_sms("01011110001")] * 10_001})
    assert response.status_code == 400 and response.json()["errorCode"] == "TooManyMessages"


def test_status_lookup_and_pagination(solapi, solapi_standin_state):
    started = datetime.now(UTC) - timedelta(seconds=1)
    out = solapi.send_many_detail(
        [_sms(f"0101234{i:04d}") for i in range(1, 7)] + [_sms("01055554444")]
    )
    ids = [m.message_id for m in out.accepted]
    status = solapi.message_status(ids)
    assert set(status) == set(ids)
    codes = {m.to: m.status_code for m in status.values()}
    assert codes["01055554444"] == "3040" and codes["01012340001"] == "4000"
    listed = list(solapi.iter_messages(start_date=started, page_size=2))
    assert set(ids) <= {m.message_id for m in listed}


def test_fault_injection_maps_to_named_errors(solapi, solapi_server, solapi_standin_state):
    injector = solapi_server[2]
    injector.configure(down=True)
    with pytest.raises(TransientError):
        solapi.send_many_detail(
            [_sms("01011112222")]
        )  # a send is never retried: ambiguous, surfaced at once
    with pytest.raises((TransientError, ServiceUnavailable)):
        solapi.balance()
    injector.reset()
    bad = SolapiResource(
        api_key=KEY, api_secret="wrong", sender=SENDER, base_url=solapi_server[0].url
    )
    with pytest.raises(PermanentError, match="SignatureDoesNotMatch"):
        bad.balance()


def test_send_many_splits_into_chunks(solapi, solapi_standin_state):
    before = solapi_standin_state.send_requests
    messages = [_sms(f"0106666{i:04d}", key=f"chunk-{i}") for i in range(25)]
    results = list(solapi.send_many(messages, chunk_size=10))
    assert [r.requested for r in results] == [10, 10, 5]
    assert solapi_standin_state.send_requests - before == 3
    assert sum(len(r.accepted) for r in results) == 25


def test_stand_in_refuses_requests_over_15_mb(solapi_server, solapi_standin_state):
    url = solapi_server[0].url
    message = {
        "to": "01012345678",
        "from": LOCAL_DEFAULTS["SOLAPI_SENDER"],
        "type": "LMS",
        "text": "가" * 1000,
    }
    body = {"messages": [message] * 5_500}  # ~17 MB of JSON, under the 10,000-message limit
    auth = solapi_authorization(
        LOCAL_DEFAULTS["SOLAPI_API_KEY"], LOCAL_DEFAULTS["SOLAPI_API_SECRET"]
    )
    response = httpx.post(
        f"{url}/messages/v4/send-many/detail",
        json=body,
        headers={"Authorization": auth},
        timeout=60,
    )
    assert response.status_code == 413 and response.json()["errorCode"] == "RequestEntityTooLarge"
