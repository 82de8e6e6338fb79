"""One message's life at SOLAPI: type detection, registration checks, delivery progress."""

from __future__ import annotations

import re
import time
from typing import Any

from standins.solapi.state import SUBJECT_MAX_BYTES, TYPE_LIMITS, StandInState, now_iso

ALIMTALK_TEXT_MAX = 1000
CUSTOM_KEY_MAX, CUSTOM_VALUE_MAX = 30, 100
CARRIER_FAILURE_SUFFIX = "4444"  # stand-in convention: these recipients fail at the carrier

# (statusCode, statusMessage) of a message refused at registration
Refusal = tuple[str, str]


_NOT_A_DIGIT = re.compile(r"\D")
_LOCAL_NUMBER = re.compile(r"^0\d{8,10}$")


def digits(value: Any) -> str:
    """A phone number as its digits only."""
    text = str(value or "")
    if text.isascii() and text.isdigit():  # already digits only (every number a client sends)
        return text
    return _NOT_A_DIGIT.sub("", text)


def detect_type(msg: dict[str, Any]) -> str:
    """SOLAPI's ``autoTypeDetect`` (default true) for a message without ``type``: Alimtalk when it
    has ``kakaoOptions``, MMS with ``imageId``, else SMS up to 90 bytes (EUC-KR) and LMS above."""
    if msg.get("type"):
        return str(msg["type"]).upper()
    if msg.get("autoTypeDetect", True) is False:
        return ""
    if msg.get("kakaoOptions"):
        return "ATA"
    if msg.get("imageId"):
        return "MMS"
    try:
        size = len(str(msg.get("text") or "").encode("euc-kr"))
    except UnicodeEncodeError:
        return "SMS"  # refused as 1029 by the validation
    return "SMS" if size <= TYPE_LIMITS["SMS"] else "LMS"


def _check_text(msg: dict[str, Any], mtype: str, text: str) -> Refusal | None:
    try:
        size = len(text.encode("euc-kr"))
    except UnicodeEncodeError:
        return "1029", "text has characters outside EUC-KR"
    if size > TYPE_LIMITS[mtype]:
        return "1013", f"{mtype} text is {size} bytes; limit {TYPE_LIMITS[mtype]}"
    subject = str(msg.get("subject") or "")
    if subject and mtype in ("LMS", "MMS"):
        try:
            subject_size = len(subject.encode("euc-kr"))
        except UnicodeEncodeError:
            return "1029", "subject has characters outside EUC-KR"
        if subject_size > SUBJECT_MAX_BYTES:
            return "1013", f"subject is {subject_size} bytes; limit {SUBJECT_MAX_BYTES}"
    if not text:
        return "1010", "text is empty"
    return None


def _check_alimtalk(state: StandInState, msg: dict[str, Any], text: str) -> Refusal | None:
    kakao = msg.get("kakaoOptions") or {}
    if kakao.get("pfId") not in state.pf_ids or not kakao.get("templateId"):
        return "1042", "Kakao channel (pfId) or templateId missing or unknown"
    if len(text) > ALIMTALK_TEXT_MAX:
        return "1013", "Alimtalk text exceeds 1,000 characters"
    return None


def validate(state: StandInState, msg: dict[str, Any], seen_to: set[str]) -> Refusal | None:
    """(statusCode, statusMessage) when the message is refused at registration, else None."""
    to, sender = digits(msg.get("to")), digits(msg.get("from"))
    mtype = str(msg.get("type") or "").upper()
    text = str(msg.get("text") or "")
    if not mtype:
        return "1011", "type is missing and autoTypeDetect is false"
    if not _LOCAL_NUMBER.match(to):
        return "1022", "invalid recipient number"
    if to in state.rejected:
        return "1022", "recipient refused"
    if sender not in state.senders:
        return "1062", "sender number is not registered"
    if to in seen_to and not msg.get("_allow_duplicates"):
        return "1026", "duplicate recipient in one request"
    if mtype in TYPE_LIMITS:
        refusal = _check_text(msg, mtype, text)
    elif mtype == "ATA":
        refusal = _check_alimtalk(state, msg, text)
    else:
        return "1011", f"unsupported type {mtype!r}"
    if refusal is not None:
        return refusal
    custom = msg.get("customFields") or {}
    if any(
        len(str(k)) > CUSTOM_KEY_MAX or len(str(v)) > CUSTOM_VALUE_MAX for k, v in custom.items()
    ):
        return "1020", "customFields keys must be <= 30 and values <= 100 characters"
    return None


def listed(state: StandInState, m: dict[str, Any]) -> bool:
    """Whether a message already shows in the lists (they lag the send by ``list_lag_s``)."""
    return time.time() >= m.get("_listed_after", 0.0)


def status_now(state: StandInState, m: dict[str, Any]) -> dict[str, Any]:
    """Advance an accepted message's delivery (2000 -> 3000 -> 4000 or 3040) and return its
    public fields."""
    if m.get("_accepted") is None:  # in a group that was not sent (yet): no delivery
        return {k: v for k, v in m.items() if not k.startswith("_")}
    if (
        m["statusCode"] in ("2000", "3000")
        and time.time() - m["_accepted"] >= state.delivery_delay_s
    ):
        if m["to"].endswith(CARRIER_FAILURE_SUFFIX):
            m.update(statusCode="3040", statusMessage="recipient number does not exist (carrier)")
        else:
            m.update(statusCode="4000", statusMessage="delivered")
        m["dateReceived"] = m["dateUpdated"] = now_iso(state.clock_skew_s)
    elif m["statusCode"] == "2000":
        m.update(
            statusCode="3000",
            statusMessage="handed to carrier, awaiting report",
            dateUpdated=now_iso(state.clock_skew_s),
        )
    return {k: v for k, v in m.items() if not k.startswith("_")}
