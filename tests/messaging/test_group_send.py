"""SOLAPI's group flow: the group id is stored before the send, a group goes out at most once,
and a send that never reached SOLAPI is settled by deleting the group, then re-queued."""

from __future__ import annotations

import pytest

from messaging.engine import RunOptions, execute_workflow
from resources.errors import PermanentError, TransientError
from resources.solapi import GroupInfo, SolapiResource
from tests.support.messaging import HookedSolapi, assert_exactly_once, make_solapi
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.integration


def _sms(to: str, key: str) -> dict[str, object]:
    return {
        "to": to,
        "from": make_solapi("http://x").sender,
        "text": "안내",
        "type": "SMS",
        "customFields": {"idempotencyKey": key},
    }


def test_standin_refuses_to_send_a_group_twice(solapi, solapi_standin_state):
    group = solapi.create_group()
    assert group.status == "PENDING" and not group.was_sent
    registered = solapi.add_group_messages(group.group_id, [_sms("01012340001", "twice-1")])
    assert [r.accepted for r in registered] == [True]
    assert solapi.send_group(group.group_id).was_sent
    with pytest.raises(PermanentError) as refused:
        solapi.send_group(group.group_id)
    assert refused.value.status == 400
    assert solapi_standin_state.accepted_by_key["twice-1"] == 1


def test_deleted_group_can_never_be_sent(solapi, solapi_standin_state):
    group = solapi.create_group()
    solapi.add_group_messages(group.group_id, [_sms("01012340002", "deleted-1")])
    deleted = solapi.delete_group(group.group_id)
    assert deleted.status == "DELETED" and not deleted.was_sent
    with pytest.raises(PermanentError):
        solapi.send_group(group.group_id)
    assert "deleted-1" not in solapi_standin_state.accepted_by_key


def test_group_id_is_stored_before_the_send(
    supabase_db, mysql_reader, solapi_server, solapi_standin_state, all_customers_workflow
):
    seen: list[dict[str, object]] = []

    def check(_n: int) -> None:
        seen.extend(
            supabase_db.fetch_all(
                "SELECT g.state, count(m.id) AS rows FROM public.messaging_send_groups g"
                " JOIN public.message_logs m ON m.provider_group_id = g.provider_group_id"
                " WHERE g.state = 'sending' GROUP BY g.state"
            )
        )

    client = make_solapi(solapi_server[0].url, HookedSolapi).on_send(check)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        client,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=30),
    )
    assert seen and all(r["rows"] for r in seen), "the group was not recorded before its send"
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)


class LostBeforeArrival(SolapiResource):
    """The first group send never reaches SOLAPI (the connection broke on the way)."""

    def send_group(self, group_id: str) -> GroupInfo:
        if not getattr(self, "_failed_once", False):
            object.__setattr__(self, "_failed_once", True)
            raise TransientError("solapi: ConnectError: connection reset")
        return super().send_group(group_id)


def test_send_that_never_arrived_is_deleted_then_sent_in_a_new_group(
    supabase_db, mysql_reader, solapi_server, solapi_standin_state, all_customers_workflow
):
    client = make_solapi(solapi_server[0].url, LostBeforeArrival)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        client,
        RunOptions(
            all_customers_workflow, _key(), send_mode="live", chunk_size=30, settle_wait_s=0.3
        ),
    )
    groups = supabase_db.fetch_all(
        "SELECT provider_group_id, state FROM public.messaging_send_groups"
        " WHERE workflow_run_id = %s ORDER BY created_at",
        (summary.workflow_run_id,),
    )
    assert groups[0]["state"] == "abandoned", groups
    assert solapi_standin_state.groups[groups[0]["provider_group_id"]]["status"] == "DELETED"
    assert summary.status == "completed", summary
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    note = supabase_db.fetch_one(
        "SELECT severity, metadata FROM public.notifications WHERE domain = 'messaging'"
        " AND type = 'send_group_deleted' AND dedupe_key = %s",
        (f"send_group_deleted:{groups[0]['provider_group_id']}",),
    )
    assert note and note["severity"] == "warning", note
