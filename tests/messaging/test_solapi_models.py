"""SOLAPI answers parsed into frozen models (pure: shapes as the API documents them)."""

from __future__ import annotations

import dataclasses

import pytest

from resources.solapi import MessageStatus, SendOutcome

pytestmark = pytest.mark.unit

SEND_ANSWER = {
    "groupInfo": {
        "groupId": "G4V1",
        "count": {"registeredSuccess": 1, "registeredFailed": 1},
    },
    "messageList": [
        {"messageId": "M1", "statusCode": "2000", "customFields": {"idempotencyKey": "k1"}}
    ],
    "failedMessageList": [
        {
            "messageId": "M2",
            "statusCode": "1022",
            "statusMessage": "blocked",
            "customFields": {"idempotencyKey": "k2"},
        }
    ],
}


def test_send_answer_names_accepted_and_refused_messages():
    outcome = SendOutcome.from_response(SEND_ANSWER, requested=2)
    assert outcome.group_id == "G4V1"
    assert [(m.message_id, m.idempotency_key) for m in outcome.accepted] == [("M1", "k1")]
    refused = outcome.failed[0]
    assert (refused.idempotency_key, refused.status_code, refused.message_id) == (
        "k2",
        "1022",
        "M2",
    ), refused
    assert outcome.accounted == outcome.requested == 2, "every message's outcome is named"


def test_an_answer_without_message_list_accounts_only_for_refusals():
    body = {k: v for k, v in SEND_ANSWER.items() if k != "messageList"}
    outcome = SendOutcome.from_response(body, requested=2)
    assert outcome.accepted == () and outcome.accounted == 1 < outcome.requested


def test_models_are_frozen():
    outcome = SendOutcome.from_response(SEND_ANSWER, requested=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.group_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("code", "accepted", "delivered"),
    [("2000", True, False), ("3000", True, False), ("4000", True, True), ("3040", False, False)],
)
def test_message_status_classifies_codes(code, accepted, delivered):
    status = MessageStatus.from_record(
        {"messageId": "M1", "to": "01012345678", "statusCode": code, "groupId": "G"}
    )
    assert (status.accepted, status.delivered) == (accepted, delivered), code


def test_message_status_without_code_is_not_accepted():
    status = MessageStatus.from_record({"messageId": "M1"})
    assert status.status_code is None and not status.accepted
