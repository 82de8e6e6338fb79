"""Helpers for the messaging tests: SOLAPI clients with kill/observe points, the exactly-once
assertion, and the workflow job's run config read by op name (not a string literal)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import dagster as dg
from psycopg.types.json import Jsonb
from pydantic import PrivateAttr

from messaging import sending
from resources.environment import LOCAL_DEFAULTS
from resources.postgres import PostgresResource
from resources.solapi import GroupInfo, SendOutcome, SolapiResource


def execution_key() -> str:
    return f"test:{uuid.uuid4()}"


def make_solapi(base_url: str, cls: type[SolapiResource] = SolapiResource, **fields: Any) -> Any:
    """A SOLAPI client for the stand-in at ``base_url`` with the local credentials."""
    return cls(
        api_key=LOCAL_DEFAULTS["SOLAPI_API_KEY"],
        api_secret=LOCAL_DEFAULTS["SOLAPI_API_SECRET"],
        sender=LOCAL_DEFAULTS["SOLAPI_SENDER"],
        pf_id=LOCAL_DEFAULTS["SOLAPI_PF_ID"],
        base_url=base_url,
        **fields,
    )


class HookedSolapi(SolapiResource):
    """A SOLAPI client that calls ``after_send(n)`` once the n-th send's answer has arrived
    (before the engine records it): the point where a crash leaves an accepted batch unknown."""

    _after_send: Callable[[int], None] | None = PrivateAttr(default=None)
    _sends: int = PrivateAttr(default=0)

    def on_send(self, hook: Callable[[int], None]) -> HookedSolapi:
        self._after_send = hook
        return self

    def send_many_detail(
        self, messages: list[dict[str, Any]], *, allow_duplicates: bool = False
    ) -> SendOutcome:
        outcome = super().send_many_detail(messages, allow_duplicates=allow_duplicates)
        self._sends += 1
        if self._after_send is not None:
            self._after_send(self._sends)
        return outcome

    def send_group(self, group_id: str) -> GroupInfo:
        info = super().send_group(group_id)
        self._sends += 1
        if self._after_send is not None:
            self._after_send(self._sends)
        return info


class UnlistedSolapi(SolapiResource):
    """A SOLAPI client whose 200 answers do not list the accepted messages."""

    def send_many_detail(
        self, messages: list[dict[str, Any]], *, allow_duplicates: bool = False
    ) -> SendOutcome:
        outcome = super().send_many_detail(messages, allow_duplicates=allow_duplicates)
        return replace(outcome, accepted=())


def after_each_batch(hook: Callable[[int], None]) -> Callable[[], None]:
    """Call ``hook(n)`` after the n-th batch's outcome is recorded (committed), by wrapping the
    engine's ``settle_response`` seam. Returns the function that undoes the patch."""
    original = sending.settle_response_group
    count = 0

    def settle_then_hook(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        result = original(*args, **kwargs)
        count += 1
        hook(count)
        return result

    sending.settle_response_group = settle_then_hook  # type: ignore[assignment]
    return lambda: setattr(sending, "settle_response_group", original)


@contextmanager
def hooked_batches(hook: Callable[[int], None]) -> Iterator[None]:
    undo = after_each_batch(hook)
    try:
        yield
    finally:
        undo()


def manual_workflow(
    db: PostgresResource, name: str, content: str, target: dict[str, Any], message_type: str = "sms"
) -> str:
    """A notification template and an active manual workflow sending it to ``target``."""
    with db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES (%s, 'notification', %s, %s) RETURNING id",
            (name, message_type, content),
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
            " message_config) VALUES (%s, 'manual', 'active', %s, %s) RETURNING id",
            (name, Jsonb(target), Jsonb({"template_id": str(tid)})),
        ).fetchone()[0]
    return str(wid)


def message_logs(db: PostgresResource, run_id: str) -> list[dict[str, Any]]:
    return db.fetch_all("SELECT * FROM public.message_logs WHERE workflow_run_id = %s", (run_id,))


def assert_exactly_once(db: PostgresResource, state: Any, run_id: str) -> list[dict[str, Any]]:
    """Nothing left pending, each sent recipient accepted by SOLAPI exactly once."""
    logs = message_logs(db, run_id)
    assert logs, "the execution logged no recipients"
    pending = [r["idempotency_key"] for r in logs if r["status"] == "pending"]
    assert not pending, f"recipients skipped (still pending): {pending[:5]}"
    keys = [r["idempotency_key"] for r in logs if r["status"] in ("sent", "delivered")]
    counts = {k: state.accepted_by_key.get(k) for k in keys}
    wrong = {k: n for k, n in counts.items() if n != 1}
    assert not wrong, f"recipients not accepted exactly once (key -> times): {wrong}"
    assert not state.duplicates(), f"SOLAPI saw duplicate sends: {state.duplicates()}"
    return logs


def workflow_run_config(**fields: Any) -> dg.RunConfig:
    """Run config for the workflow job, keyed by the workflow op's name."""
    from messaging.assets import WorkflowRunConfig, messaging_workflow_run

    return dg.RunConfig(ops={messaging_workflow_run.op.name: WorkflowRunConfig(**fields)})


def workflow_config_of(request: dg.RunRequest) -> dict[str, Any]:
    """The workflow op's config inside a sensor's run request."""
    from messaging.assets import messaging_workflow_run

    config: dict[str, Any] = request.run_config["ops"][messaging_workflow_run.op.name]["config"]
    return config
