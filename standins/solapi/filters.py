"""``GET /messages/v4/list`` filters: ids, group, numbers, type, status, dates, paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from standins.solapi.messages import digits, listed, status_now
from standins.solapi.state import StandInState, utc_iso

MAX_LIMIT = 500
DEFAULT_LIMIT = 20


def page_limit(params: QueryParams) -> int:
    """``limit`` clamped to 1..500 (ValueError when it is not a number)."""
    return min(max(int(params.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)


def _message_ids(params: QueryParams) -> set[str]:
    """``messageIds``, ``messageIds[]`` and ``messageId``, each possibly comma-separated."""
    ids = set(params.getlist("messageIds")) | {
        i for v in params.getlist("messageIds[]") for i in v.split(",")
    }
    ids |= {i for i in (params.get("messageId") or "").split(",") if i}
    return {i for v in ids for i in v.split(",") if i}


@dataclass(frozen=True)
class MessageQuery:
    limit: int
    ids: frozenset[str]
    group_id: str | None
    start: str | None
    end: str | None
    start_key: str | None
    date_field: str  # dateCreated | dateUpdated
    to: str
    sender: str
    mtype: str
    status_code: str | None

    @classmethod
    def from_params(cls, params: QueryParams) -> MessageQuery:
        """The query of a list request (ValueError for a non-numeric ``limit``)."""
        limit = page_limit(params)
        updated = (params.get("dateType") or "CREATED").upper() == "UPDATED"
        return cls(
            limit=limit,
            ids=frozenset(_message_ids(params)),
            group_id=params.get("groupId"),
            start=utc_iso(params.get("startDate")),
            end=utc_iso(params.get("endDate")),
            start_key=params.get("startKey"),
            date_field="dateUpdated" if updated else "dateCreated",
            to=digits(params.get("to")),
            sender=digits(params.get("from")),
            mtype=(params.get("type") or "").upper(),
            status_code=params.get("statusCode"),
        )

    def matches(self, state: StandInState, m: dict[str, Any]) -> bool:
        """Whether a stored message passes every filter (a status filter advances delivery)."""
        return listed(state, m) and not (
            (self.group_id and m["groupId"] != self.group_id)
            or (self.to and m["to"] != self.to)
            or (self.sender and m["from"] != self.sender)
            or (self.mtype and m["type"] != self.mtype)
            or (self.status_code and status_now(state, m)["statusCode"] != self.status_code)
            or (self.start and m[self.date_field] < self.start)
            or (self.end and m[self.date_field] > self.end)
            or (self.start_key and m["messageId"] < self.start_key)
        )


@dataclass(frozen=True)
class MessagePage:
    messages: dict[str, dict[str, Any]]  # message id -> public fields
    next_key: str | None


def select_messages(state: StandInState, query: MessageQuery) -> MessagePage:
    """One page of matching messages in message-id order (call with ``state.lock`` held)."""
    if query.ids:
        candidates = [state.messages[i] for i in sorted(query.ids) if i in state.messages]
    else:
        candidates = [state.messages[i] for i in sorted(state.messages)]
    picked: list[dict[str, Any]] = []
    for m in candidates:
        if not query.matches(state, m):
            continue
        picked.append(m)
        if len(picked) > query.limit:
            break
    next_key = picked[query.limit]["messageId"] if len(picked) > query.limit else None
    page = {m["messageId"]: status_now(state, m) for m in picked[: query.limit]}
    return MessagePage(page, next_key)
