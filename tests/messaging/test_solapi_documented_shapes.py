"""The SOLAPI stand-in answers in the shapes SOLAPI documents and its own Python SDK (solapi 5.0.3)
validates: a client written against the vendor's API, not against this stand-in, must work."""

from __future__ import annotations

import httpx
import pytest

from resources.environment import LOCAL_DEFAULTS
from resources.solapi import solapi_authorization
from standins import solapi as solapi_standin

pytestmark = pytest.mark.integration

KEY, SECRET = LOCAL_DEFAULTS["SOLAPI_API_KEY"], LOCAL_DEFAULTS["SOLAPI_API_SECRET"]
SENDER = LOCAL_DEFAULTS["SOLAPI_SENDER"]

# Required fields of the SDK's GroupMessageResponse / FailedMessage models (solapi/model/response).
GROUP_FIELDS = {
    "count",
    "countForCharge",
    "balance",
    "point",
    "app",
    "log",
    "status",
    "allowDuplicates",
    "isRefunded",
    "accountId",
    "masterAccountId",
    "apiVersion",
    "groupId",
    "price",
    "dateCreated",
    "dateUpdated",
}
COUNT_FIELDS = {
    "total",
    "sentTotal",
    "sentSuccess",
    "sentPending",
    "sentReplacement",
    "refund",
    "registeredFailed",
    "registeredSuccess",
}
FAILED_FIELDS = {
    "to",
    "from",
    "type",
    "statusMessage",
    "country",
    "messageId",
    "statusCode",
    "accountId",
}


def _auth() -> dict[str, str]:
    return {"Authorization": solapi_authorization(KEY, SECRET)}


def _sdk_style_auth() -> dict[str, str]:
    """The SDK's header: ``ApiKey=``/``Date=`` capitalised, local time with offset, uuid1 hex
    salt."""
    import hashlib
    import hmac
    import time
    import uuid
    from datetime import datetime, timedelta, timezone

    offset = -(time.altzone if time.localtime().tm_isdst else time.timezone)
    date = datetime.now().replace(tzinfo=timezone(timedelta(seconds=offset))).isoformat()
    salt = uuid.uuid1().hex
    sig = hmac.new(SECRET.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()
    return {"Authorization": f"HMAC-SHA256 ApiKey={KEY}, Date={date}, salt={salt}, signature={sig}"}


def _send(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/messages/v4/send-many/detail", json=body, headers=headers or _auth())


def _get(url: str, path: str, params: dict | None = None) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers=_auth())


def test_send_response_has_the_documented_group_and_failed_message_shapes(
    solapi_server, solapi_standin_state
):
    url = solapi_server[0].url
    body = {
        "messages": [
            {"to": "01012121212", "from": SENDER, "text": "안내", "type": "SMS"},
            {"to": "01012121213", "from": "0299999999", "text": "안내", "type": "SMS"},
        ],
        "showMessageList": True,
        "agent": {"sdkVersion": "python/5.0.3"},
    }
    out = _send(url, body, _sdk_style_auth())
    assert out.status_code == 200, out.text
    data = out.json()
    group = data["groupInfo"]
    assert set(group) >= GROUP_FIELDS, GROUP_FIELDS - set(group)
    assert set(group["count"]) >= COUNT_FIELDS
    assert group["allowDuplicates"] is False and group["isRefunded"] is False
    for name in ("balance", "point"):
        assert {"requested", "replacement", "refund", "sum"} <= set(group[name])
    [failed] = data["failedMessageList"]
    assert set(failed) >= FAILED_FIELDS, FAILED_FIELDS - set(failed)
    assert failed["country"] == "82" and failed["statusCode"] == "1062"
    [accepted] = data["messageList"]
    assert {"messageId", "statusCode", "statusMessage"} <= set(accepted)


def test_message_list_is_only_in_the_response_when_asked_for(solapi_server, solapi_standin_state):
    url = solapi_server[0].url
    out = _send(
        url, {"messages": [{"to": "01012121214", "from": SENDER, "text": "안내", "type": "SMS"}]}
    ).json()
    assert "messageList" not in out  # showMessageList defaults to false in SOLAPI's API
    assert out["groupInfo"]["count"]["registeredSuccess"] == 1


def test_type_is_detected_when_omitted_and_to_may_be_a_list(solapi_server, solapi_standin_state):
    url = solapi_server[0].url
    body = {
        "showMessageList": True,
        "messages": [
            {"to": "010-3434-0001", "from": SENDER, "text": "짧은 안내"},  # -> SMS
            {"to": "01034340002", "from": SENDER, "text": "가" * 60},  # 120 bytes -> LMS
            {
                "to": ["01034340003", "01034340004"],
                "from": SENDER,
                "text": "두 명에게",
            },  # array `to`
            {
                "to": "01034340005",
                "from": SENDER,
                "text": "x",
                "autoTypeDetect": False,
            },  # no type, no detection
        ],
    }
    data = _send(url, body).json()
    accepted = {m["to"] for m in data["messageList"]}
    assert accepted == {"01034340001", "01034340002", "01034340003", "01034340004"}
    assert data["groupInfo"]["count"]["total"] == 5
    types = {
        m["to"]: m["type"] for m in solapi_standin_state.messages.values() if m["to"] in accepted
    }
    assert types["01034340001"] == "SMS" and types["01034340002"] == "LMS"
    assert [f["to"] for f in data["failedMessageList"]] == ["01034340005"]


def test_lms_subject_is_limited_to_40_bytes(solapi_server, solapi_standin_state):
    url = solapi_server[0].url
    body = {
        "messages": [
            {
                "to": "01045450001",
                "from": SENDER,
                "text": "본문",
                "type": "LMS",
                "subject": "가" * 21,
            }
        ]
    }
    data = _send(url, body).json()
    assert [f["statusCode"] for f in data["failedMessageList"]] == ["1013"]


def test_list_filters_and_refused_messages_are_looked_up_too(solapi_server, solapi_standin_state):
    url = solapi_server[0].url
    solapi_standin_state.rejected = {"01056560002"}
    body = {
        "showMessageList": True,
        "messages": [
            {
                "to": "01056560001",
                "from": SENDER,
                "text": "안내",
                "type": "SMS",
                "customFields": {"k": "a"},
            },
            {
                "to": "01056560002",
                "from": SENDER,
                "text": "안내",
                "type": "SMS",
                "customFields": {"k": "b"},
            },
        ],
    }
    data = _send(url, body).json()
    refused_id = data["failedMessageList"][0]["messageId"]
    by_to = _get(url, "/messages/v4/list", {"to": "01056560001"}).json()["messageList"]
    assert [m["to"] for m in by_to.values()] == ["01056560001"]
    refused = _get(url, "/messages/v4/list", {"messageId": refused_id}).json()["messageList"]
    assert refused[refused_id]["statusCode"] == "1022"
    assert refused[refused_id]["customFields"] == {"k": "b"}
    by_code = _get(
        url, "/messages/v4/list-old", {"statusCode": "1022", "to": "01056560002"}
    ).json()["messageList"]
    assert list(by_code) == [refused_id]


def test_group_endpoints(solapi_server, solapi_standin_state):
    url = solapi_server[0].url
    data = _send(
        url,
        {
            "messages": [
                {"to": "01067670001", "from": SENDER, "text": "안내", "type": "SMS"},
                {"to": "01067670002", "from": SENDER, "text": "안내", "type": "SMS"},
            ]
        },
    ).json()
    group_id = data["groupInfo"]["groupId"]
    messages = _get(url, f"/messages/v4/groups/{group_id}/messages").json()
    assert {m["to"] for m in messages["messageList"].values()} == {"01067670001", "01067670002"}
    assert "limit" in messages
    groups = _get(url, "/messages/v4/groups", {"limit": 500}).json()
    assert group_id in groups["groupList"]
    assert set(groups["groupList"][group_id]) >= GROUP_FIELDS
    missing = _get(url, "/messages/v4/groups/G4V000000000000000000000/messages")
    assert missing.status_code == 404 and missing.json()["errorCode"]


def test_stand_in_entry_point_builds_app():
    app = solapi_standin.create_app(0, "tiny")
    assert app is not None


def test_client_splits_by_size_and_refuses_an_oversized_request(solapi, solapi_standin_state):
    import pytest

    from resources.solapi import message_bytes, split_by_size

    long = [
        {"to": f"0107777{i:04d}", "from": SENDER, "type": "LMS", "text": "가" * 900}
        for i in range(20)
    ]
    chunks = split_by_size(long, 10_000)
    assert sum(len(c) for c in chunks) == 20 and all(
        sum(message_bytes(m) for m in c) <= 10_000 for c in chunks
    )
    results = list(solapi.send_many(long, max_bytes=10_000))
    assert len(results) == len(chunks) >= 6
    assert sum(r.registered_success for r in results) == 20
    with pytest.raises(ValueError, match="15 MB"):
        solapi.send_many_detail([{**long[0], "text": "가" * 1000}] * 5_500)
