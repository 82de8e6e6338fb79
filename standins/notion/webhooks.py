"""Notion webhooks, as the stand-in sends them (developers.notion.com "Webhooks").

A subscription is created with an endpoint URL: Notion first POSTs ``{"verification_token":
"secret_..."}`` to it (the handshake; the token is then pasted into the integration's settings).
Every later event is a JSON POST signed with that token: ``X-Notion-Signature: sha256=<hex
HMAC-SHA256 of the raw body>``. Events carry ids and types only (``entity``, ``data.parent``),
never property values; the receiver reads the page through the API. Delivery is asynchronous
(a background thread here), at least once, with ``attempt_number``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

PAGE_EVENTS = (
    "page.created",
    "page.properties_updated",
    "page.content_updated",
    "page.moved",
    "page.deleted",
    "page.undeleted",
)
SCHEMA_EVENT = "data_source.schema_updated"


def sign(token: str, body: bytes) -> str:
    """The ``X-Notion-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """One subscription: its endpoint, its verification token, and a delivery thread."""

    def __init__(self, url: str, workspace_id: str = "stand-in-workspace") -> None:
        self.url = url
        self.verification_token = f"secret_{secrets.token_urlsafe(24)}"
        self.subscription_id = str(uuid.uuid4())
        self.workspace_id = workspace_id
        self.sent: list[dict[str, Any]] = []
        self.failed = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver, daemon=True, name="notion-webhooks")
        self._thread.start()

    def verify(self) -> int:
        """The handshake: POST the verification token (unsigned), synchronously."""
        body = json.dumps({"verification_token": self.verification_token}).encode()
        return httpx.post(
            self.url, content=body, headers={"Content-Type": "application/json"}, timeout=5
        ).status_code

    def event(
        self,
        event_type: str,
        entity_id: str,
        entity_type: str,
        *,
        database_id: str | None = None,
        data_source_id: str | None = None,
        updated_properties: list[str] | None = None,
    ) -> dict[str, Any]:
        """Queue one signed event; returns it."""
        data: dict[str, Any] = {}
        if database_id or data_source_id:
            data["parent"] = {
                "id": database_id,
                "type": "database",
                "data_source_id": data_source_id,
            }
        if updated_properties is not None:
            data["updated_properties"] = updated_properties
        payload = {
            "id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "workspace_id": self.workspace_id,
            "subscription_id": self.subscription_id,
            "integration_id": "stand-in-integration",
            "type": event_type,
            "authors": [{"id": "stand-in-user", "type": "person"}],
            "attempt_number": 1,
            "entity": {"id": entity_id, "type": entity_type},
            "data": data,
        }
        self._queue.put(json.dumps(payload, ensure_ascii=False).encode())
        return payload

    def _deliver(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            headers = {
                "Content-Type": "application/json",
                "X-Notion-Signature": sign(self.verification_token, body),
            }
            try:
                response = httpx.post(self.url, content=body, headers=headers, timeout=5)
                ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            if ok:
                self.sent.append(json.loads(body))
            else:
                self.failed += 1
            self._queue.task_done()

    def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued event was delivered (tests, benchmarks)."""
        deadline = datetime.now(UTC).timestamp() + timeout_s
        while self._queue.unfinished_tasks and datetime.now(UTC).timestamp() < deadline:
            threading.Event().wait(0.01)

    def close(self) -> None:
        self._queue.put(None)


def page_event(
    sender: WebhookSender | None, event_type: str, page: dict[str, Any], ds: Any
) -> None:
    """The hook the stand-in's page handlers call (no subscription: nothing happens)."""
    if sender is None:
        return
    parent = page.get("parent") or {}
    sender.event(
        event_type,
        page["id"],
        "page",
        database_id=parent.get("database_id") or getattr(ds, "database_id", None),
        data_source_id=getattr(ds, "id", None),
    )


def schema_event(sender: WebhookSender | None, ds: Any) -> None:
    if sender is None:
        return
    sender.event(
        SCHEMA_EVENT,
        ds.id,
        "data_source",
        database_id=getattr(ds, "database_id", None),
        data_source_id=ds.id,
    )
