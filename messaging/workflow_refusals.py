"""A workflow the platform refuses to run when it loads it (the app writes workflows): the reason
goes to the sensor's skip message and, once per distinct misconfiguration, to
``public.notifications``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from resources.notifications import notify
from resources.postgres import PostgresResource

REFUSED_TYPE = "event_workflow_refused"


def refuse_event_workflow(db: PostgresResource, workflow: Mapping[str, Any], reason: str) -> str:
    """Record the refusal as a notification (deduplicated per workflow and configuration) and
    return the note for the sensor's skip message. No personal data: ids, names, the reason."""
    wid = str(workflow["id"])
    config = json.dumps(
        [workflow.get("trigger_config"), workflow.get("target_config"), reason],
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(config.encode()).hexdigest()[:16]
    with db.transaction() as conn:
        notify(
            conn,
            domain="messaging",
            type=REFUSED_TYPE,
            severity="error",
            title=f"Event workflow refused: {workflow.get('name')}",
            message=f"{reason}. The workflow does not run until its target binds the event's keys.",
            metadata={"workflow_id": wid, "reason": reason},
            dedupe_key=f"{REFUSED_TYPE}:{wid}:{digest}",
        )
    return f"refused {workflow.get('name')} ({wid}): {reason}"
