"""Free text from SOLAPI (status messages) is stored safely: PostgreSQL text cannot hold NUL."""

from __future__ import annotations

import pytest

from resources.solapi import MessageStatus, SendOutcome

pytestmark = pytest.mark.integration


def test_a_refusal_whose_status_message_has_a_nul_is_recorded_not_a_failed_settle(supabase_db):
    """PostgreSQL text cannot hold NUL: a provider message carrying one must not make the settle
    of its whole batch fail on every retry."""
    import uuid

    from messaging.sending import Refused, apply_results

    key = f"nul-test:{uuid.uuid4()}"
    supabase_db.execute(
        "INSERT INTO public.message_logs (recipient_phone, message_type, message_content, status,"
        " idempotency_key) VALUES ('01055502001', 'sms', 'x', 'pending', %s)",
        (key,),
    )
    answer = {
        "groupInfo": {"groupId": "G4VNUL", "count": {}},
        "failedMessageList": [
            {
                "messageId": "MNUL",
                "statusCode": "1062",
                "statusMessage": "bad\x00number",
                "customFields": {"idempotencyKey": key},
            }
        ],
    }
    failed = SendOutcome.from_response(answer, 1).failed[0]
    listed = MessageStatus.from_record({**answer["failedMessageList"][0], "groupId": "G4VNUL"})
    assert "\x00" not in failed.status_message and "\x00" not in listed.status_message
    with supabase_db.transaction() as conn:
        refusal = Refused(key, "1062", failed.status_message, failed.message_id)
        apply_results(conn, [], [refusal], 0.0)
    row = supabase_db.fetch_one(
        "SELECT status, error_code, error_message FROM public.message_logs"
        " WHERE idempotency_key = %s",
        (key,),
    )
    assert row == {"status": "failed", "error_code": "1062", "error_message": "bad\ufffdnumber"}
