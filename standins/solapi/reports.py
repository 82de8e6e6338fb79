"""Delivery-report webhooks, as SOLAPI pushes them to a registered URL.

``POST /_solapi/reports {"url": "..."}`` (a stand-in hook, no auth) pushes one report event per
message that reached a final status (4000 delivered, or a failure code) since the last push:
``[{eventDataId, data: {messageId, groupId, type, to, from, statusCode, statusMessage,
dateProcessed, dateReported, dateReceived, networkCode, kakaoOptions, customFields}, retryCount}]``
in batches of ``REPORT_BATCH``. Events the receiver does not acknowledge with a 2xx are pushed
again next time with ``retryCount`` + 1, under the same ``eventDataId`` (as SOLAPI retries).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from standins.solapi.errors import error_response
from standins.solapi.messages import status_now
from standins.solapi.state import StandInState, now_iso

REPORT_BATCH = 100
_WAITING = ("2000", "3000")


def due_reports(state: StandInState) -> list[dict[str, Any]]:
    """Report events for messages whose final status has not been acknowledged yet."""
    events: list[dict[str, Any]] = []
    with state.lock:
        for m in state.messages.values():
            if m.get("_accepted") is None or m.get("_report_acked"):
                continue
            public = status_now(state, m)
            if public.get("statusCode") in _WAITING:
                continue
            event_id = m.setdefault("_report_event", f"EV{secrets.token_hex(10).upper()}")
            retry = m.setdefault("_report_retries", 0)
            stamp = now_iso(state.clock_skew_s)
            data = {
                k: public.get(k)
                for k in ("messageId", "groupId", "type", "to", "from", "statusCode")
            }
            data.update(
                statusMessage=public.get("statusMessage"),
                dateProcessed=public.get("dateUpdated") or stamp,
                dateReported=stamp,
                dateReceived=public.get("dateReceived") or stamp,
                networkCode="SKT",
                kakaoOptions=public.get("kakaoOptions"),
                customFields=public.get("customFields") or {},
            )
            events.append(
                {"eventDataId": event_id, "data": data, "retryCount": retry, "_message": m}
            )
    return events


async def push_reports(state: StandInState, request: Request) -> JSONResponse:
    """Push due report events to ``url``; returns how many were pushed and acknowledged."""
    body = await request.json()
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url:
        return error_response(400, "ValidationError", "url is required")
    events = due_reports(state)
    acknowledged = 0
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for start in range(0, len(events), REPORT_BATCH):
            batch = events[start : start + REPORT_BATCH]
            wire = [{k: v for k, v in e.items() if k != "_message"} for e in batch]
            try:
                response = await client.post(url, json=wire)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            statuses.append(status)
            with state.lock:
                for e in batch:
                    if 200 <= status < 300:
                        e["_message"]["_report_acked"] = True
                    else:
                        e["_message"]["_report_retries"] = e["retryCount"] + 1
            if 200 <= status < 300:
                acknowledged += len(batch)
    return JSONResponse({"pushed": len(events), "acknowledged": acknowledged, "status": statuses})
